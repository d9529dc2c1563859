#!/usr/bin/env python3
"""slixclient.py (same command line, commands and events) for a client that
a full cluster node sends elsewhere with the stream error see-other-host
(RFC 6120 section 4.9.3.19), used by test/interop/loadshare_test.go.

slixmpp follows see-other-host itself (BaseXMPP._handle_stream_error: it
stores the new address and reconnects). Two things are added here:

  - slixclient.py takes any disconnection it did not ask for as fatal; the
    one slixmpp makes to follow the redirect is not.
  - slixmpp 1.8.3 loses the address on the way: its reconnect calls
    ClientXMPP.connect() without an address, which goes back to the JID's
    domain (and its SRV records). With --keep-redirect-address (the
    default) connect() keeps the stored address instead;
    --no-keep-redirect-address shows slixmpp as it is.

Extra events:

  {"event": "redirected", "to": "host:port"}   see-other-host received
  {"event": "server", "addr": "host:port"}     where the session started
"""
import argparse
import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slixclient  # noqa: E402
from slixclient import emit  # noqa: E402


class Client(slixclient.Client):
    def __init__(self, a):
        super().__init__(a)
        self.redirecting = False
        self.add_event_handler("stream_error", self.on_stream_error)
        self.add_event_handler("session_start", self.on_session_server)

    def on_stream_error(self, error):
        if error["condition"] == "see-other-host":
            self.redirecting = True
            emit(event="redirected", to=error["see_other_host"])

    def on_session_server(self, _):
        peer = self.transport.get_extra_info("peername") if self.transport else None
        if peer:
            host = peer[0] if ":" not in peer[0] else "[%s]" % peer[0]
            emit(event="server", addr="%s:%d" % (host, peer[1]))

    def on_disconnected(self, reason):
        if self.redirecting:
            self.redirecting = False
            return  # slixmpp connects to the other host now
        super().on_disconnected(reason)

    def connect(self, address=None, **kw):
        if address is None and self._redirect_attempts and self.a.keep_redirect_address:
            address = self.address
        return super().connect(address, **kw)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", required=True, help="server address")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--mech")
    p.add_argument("--register", action="store_true")
    p.add_argument("--max-time", type=float, default=60)
    p.add_argument("--keep-redirect-address", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.ERROR, format="%(levelname)s %(message)s")
    slixclient.Client = Client
    sys.exit(asyncio.run(slixclient.main(a)))
