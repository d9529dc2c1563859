#!/usr/bin/env python3
"""Line-driven XMPP client on slixmpp (Debian: python3-slixmpp), used by the
CASP3R interop tests (test/interop/*_test.go).

It connects with STARTTLS (certificate checks off: the test servers use
self-signed certificates), optionally registers the account first (XEP-0077),
logs in, fetches the roster, sends initial presence and then prints one JSON
object per line for everything it sees:

  {"event": "features", "mechanisms": [...], "register": true}  stream features (pre-auth)
  {"event": "registered", "jid": ...}                     in-band registration succeeded
  {"event": "session", "jid": ..., "mech": ..., "tls": ...}
  {"event": "roster", "items": {"bare jid": "both", ...}}  answer to a roster get
  {"event": "roster_push", "items": {...}}
  {"event": "presence", "from": ..., "type": "available"|"unavailable"|"subscribe"|...}
  {"event": "message", "from": ..., "type": ..., "body": ..., "delayed": bool}
  {"event": "error", "error": ...}                        then exit 1

Commands arrive on stdin, one JSON object per line:

  {"cmd": "send", "to": JID, "body": TEXT}    chat message
  {"cmd": "subscribe", "to": JID}             ask for JID's presence (adds it to the roster)
  {"cmd": "roster"}                           roster get, answered by a "roster" event
  {"cmd": "ping", "tag": T}                   XEP-0199 ping to the server, answered by
                                              {"event": "pong", "tag": T}
  {"cmd": "quit"}                             close the stream and exit 0 (so does EOF)

Subscription requests from others are approved (auto_authorize) but not
returned (no auto_subscribe): each side adds the other explicitly, as a user would.
"""
import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import time

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza import StreamFeatures

NS_REGISTER_FEATURE = "{http://jabber.org/features/iq-register}register"
NS_SASL_MECHS = "{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms"
NS_DELAY = "{urn:xmpp:delay}delay"


def emit(**kw):
    kw.setdefault("t", round(time.time(), 3))
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


class Client(slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a.jid, a.password, sasl_mech=a.mech or None)
        self.a = a
        self.exit_code = None
        self.done = asyncio.Event()
        self.quitting = False
        self.stdin_buf = b""
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.roster.auto_authorize = True
        self.roster.auto_subscribe = False
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        if a.register:
            self.register_plugin("xep_0004")
            self.register_plugin("xep_0066")
            self.register_plugin("xep_0077")
            # Register even when the feature is not advertised; the "features"
            # event tells the test whether it was.
            self["xep_0077"].force_registration = True
            # slixmpp 1.8 queues every stanza sent before the session starts,
            # which includes the registration iqs; let them through.
            self._always_send_everything = True
            self.add_event_handler("register", self.on_register)
        if a.mech and not a.mech.endswith("-PLUS"):
            self.without_channel_binding()
        self.add_filter("in", self.watch_features)
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence", self.on_presence)
        self.add_event_handler("roster_update", self.on_roster_push)
        self.add_event_handler("failed_all_auth", lambda *_: self.finish(1, "authentication failed"))
        self.add_event_handler("connection_failed", lambda e: self.finish(1, f"connection failed: {e}"))
        self.add_event_handler("stream_error", lambda e: emit(event="stream_error", error=str(e)))
        self.add_event_handler("disconnected", self.on_disconnected)

    def without_channel_binding(self):
        # With a non-PLUS mechanism forced, act as a client without channel
        # binding support (gs2 flag "n"). Otherwise slixmpp sends "y" ("I could
        # bind but you don't offer -PLUS"), which a server that does offer
        # -PLUS must refuse as a downgrade (RFC 5802 section 6).
        fm = self["feature_mechanisms"]
        creds = fm.sasl_callback

        def no_cb(required, optional):
            r = creds(required, optional)
            if "channel_binding" in r:
                r["channel_binding"] = None
            return r

        fm.sasl_callback = no_cb

    def finish(self, code, error=None):
        if error:
            emit(event="error", error=str(error))
        if self.exit_code is None:
            self.exit_code = code
        self.done.set()

    def watch_features(self, stanza):
        if isinstance(stanza, StreamFeatures) and "mechanisms" not in self.features:
            mechs = stanza.xml.find(NS_SASL_MECHS)
            if mechs is not None:
                emit(
                    event="features",
                    mechanisms=[m.text for m in mechs],
                    register=stanza.xml.find(NS_REGISTER_FEATURE) is not None,
                )
        return stanza

    async def on_register(self, _form):
        iq = self.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.boundjid.user
        iq["register"]["password"] = self.a.password
        try:
            await iq.send(timeout=15)
        except (IqError, IqTimeout) as e:
            cond = e.iq["error"]["condition"] if isinstance(e, IqError) else "timeout"
            self.finish(1, f"registration failed: {cond}")
            return
        emit(event="registered", jid=self.boundjid.bare)

    async def on_start(self, _):
        ssl_obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        emit(
            event="session",
            jid=str(self.boundjid),
            mech=self["feature_mechanisms"].mech.name if self["feature_mechanisms"].mech else None,
            tls=ssl_obj.version() if ssl_obj else None,
        )
        await self.fetch_roster()
        self.send_presence()
        try:
            asyncio.get_running_loop().add_reader(sys.stdin.fileno(), self.on_stdin)
        except OSError as e:  # e.g. stdin is /dev/null: no commands, run until --max-time
            emit(event="no_commands", error=str(e))

    async def fetch_roster(self):
        # A plain roster get, without roster versioning (RFC 6121 2.6): the
        # answer always lists every item.
        iq = self.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        try:
            iq = await iq.send(timeout=15)
        except (IqError, IqTimeout) as e:
            self.finish(1, f"roster get failed: {e}")
            return
        emit(event="roster", items=roster_items(iq))

    def on_roster_push(self, iq):
        if iq["type"] != "set":
            return  # slixmpp also reports roster get results here
        emit(event="roster_push", items=roster_items(iq))

    def on_presence(self, pres):
        emit(event="presence", **{"from": str(pres["from"])}, type=pres["type"])

    def on_message(self, msg):
        if not msg["body"]:
            return
        emit(
            event="message",
            **{"from": str(msg["from"])},
            type=msg["type"],
            body=msg["body"],
            delayed=msg.xml.find(NS_DELAY) is not None,
        )

    def on_disconnected(self, reason):
        if not self.quitting:
            self.finish(1, f"disconnected by the server: {reason}")
        else:
            self.done.set()

    def on_stdin(self):
        data = os.read(sys.stdin.fileno(), 65536)
        if not data:
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            self.quit()
            return
        self.stdin_buf += data
        while b"\n" in self.stdin_buf:
            line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
            if line.strip():
                self.command(line)

    def command(self, line):
        try:
            c = json.loads(line)
        except ValueError as e:
            emit(event="error", error=f"bad command: {e}")
            return
        cmd = c.get("cmd")
        if cmd == "send":
            self.send_message(mto=c["to"], mbody=c["body"], mtype=c.get("type", "chat"))
            emit(event="sent", to=c["to"], body=c["body"])
        elif cmd == "subscribe":
            self.send_presence(pto=c["to"], ptype="subscribe")
            emit(event="sent", to=c["to"], subscribe=True)
        elif cmd == "ping":
            asyncio.ensure_future(self.ping_server(c.get("tag", "")))
        elif cmd == "roster":
            asyncio.ensure_future(self.fetch_roster())
        elif cmd == "quit":
            self.quit()
        else:
            emit(event="error", error=f"unknown command {cmd!r}")

    async def ping_server(self, tag):
        try:
            await self["xep_0199"].send_ping(self.boundjid.domain, timeout=15)
        except IqError as e:
            emit(event="error", error=f"ping: {e.iq['error']['condition']}", tag=tag)
            return
        except IqTimeout:
            emit(event="error", error="ping: timeout", tag=tag)
            return
        emit(event="pong", tag=tag)

    def quit(self):
        if self.quitting:
            return
        self.quitting = True
        if self.exit_code is None:
            self.exit_code = 0
        self.disconnect(wait=2.0)


def roster_items(iq):
    items = iq["roster"]["items"]
    return {str(j): items[j]["subscription"] for j in items}


async def main(a):
    c = Client(a)
    c.connect(address=(a.host, a.port), force_starttls=True)
    try:
        await asyncio.wait_for(c.done.wait(), timeout=a.max_time)
    except asyncio.TimeoutError:
        emit(event="timeout", after_s=a.max_time)
        return 3
    if c.quitting:
        emit(event="closed")
    return c.exit_code if c.exit_code is not None else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", required=True, help="server address")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--mech", help="the only SASL mechanism to use, e.g. SCRAM-SHA-256 "
                   "(a non-PLUS one turns channel binding off); default: slixmpp's choice")
    p.add_argument("--register", action="store_true", help="create the account first (XEP-0077)")
    p.add_argument("--max-time", type=float, default=60, help="exit 3 after this many seconds")
    p.add_argument("-v", "--verbose", action="store_true", help="slixmpp debug log on stderr")
    a = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.ERROR, format="%(levelname)s %(message)s")
    sys.exit(asyncio.run(main(a)))
