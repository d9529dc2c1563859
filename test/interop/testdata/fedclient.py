#!/usr/bin/env python3
"""slixclient.py (same directory) plus what the federation tests need
(test/interop/federation_test.go): queries addressed to any JID, vCards, and
the errors that come back from other servers.

Everything slixclient.py prints and takes still works. More commands (each
answer carries the command's "tag"):

  {"cmd": "send", "to": JID, "body": TEXT, "id": ID}  chat message with a chosen id
  {"cmd": "ping_to", "to": JID, "tag": T}     XEP-0199 ping -> {"event": "pong", "tag", "from"}
  {"cmd": "disco_info", "to": JID, "tag": T}  XEP-0030 -> {"event": "disco_info", "tag", "from",
                                              "identities": [[category, type, name], ...],
                                              "features": [...]}
  {"cmd": "vcard_set", "fn": F, "nick": N, "tag": T}  XEP-0054 set of one's own vCard
                                              -> {"event": "vcard_set", "tag"}
  {"cmd": "vcard_get", "to": JID, "tag": T}   XEP-0054 -> {"event": "vcard", "tag", "from", "fn", "nick"}

A query that fails prints {"event": "iq_error", "tag", "cmd", "condition", "text"}
(condition "timeout" when no answer came). Messages of type error print

  {"event": "message_error", "from", "id", "condition", "text", "body"}

and are not reported as "message" events.
"""
import argparse
import asyncio
import json
import logging
import sys

from slixmpp.exceptions import IqError, IqTimeout

import slixclient
from slixclient import emit

IQ_TIMEOUT = 20


class FedClient(slixclient.Client):
    def __init__(self, a):
        super().__init__(a)
        self.register_plugin("xep_0054")
        self.add_event_handler("message_error", self.on_message_error)

    def on_message(self, msg):
        if msg["type"] == "error":
            return  # reported by on_message_error
        super().on_message(msg)

    def on_message_error(self, msg):
        emit(
            event="message_error",
            **{"from": str(msg["from"])},
            id=msg["id"],
            condition=msg["error"]["condition"],
            text=msg["error"]["text"],
            body=msg["body"],
        )

    def command(self, line):
        try:
            c = json.loads(line)
        except ValueError:
            return super().command(line)
        cmd = c.get("cmd")
        if cmd == "send" and c.get("id"):
            m = self.make_message(mto=c["to"], mbody=c["body"], mtype=c.get("type", "chat"))
            m["id"] = c["id"]
            m.send()
            emit(event="sent", to=c["to"], body=c["body"], id=c["id"])
        elif cmd in ("ping_to", "disco_info", "vcard_set", "vcard_get"):
            asyncio.ensure_future(self.query(cmd, c))
        else:
            super().command(line)

    async def query(self, cmd, c):
        tag = c.get("tag", "")
        try:
            if cmd == "ping_to":
                await self["xep_0199"].send_ping(c["to"], timeout=IQ_TIMEOUT)
                emit(event="pong", tag=tag, **{"from": c["to"]})
            elif cmd == "disco_info":
                iq = await self["xep_0030"].get_info(jid=c["to"], cached=False, timeout=IQ_TIMEOUT)
                info = iq["disco_info"]
                emit(
                    event="disco_info",
                    tag=tag,
                    **{"from": str(iq["from"])},
                    identities=[[i[0], i[1], i[3]] for i in info["identities"]],
                    features=sorted(info["features"]),
                )
            elif cmd == "vcard_set":
                v = self["xep_0054"].make_vcard()
                v["FN"] = c.get("fn", "")
                v["NICKNAME"] = c.get("nick", "")
                await self["xep_0054"].publish_vcard(v, timeout=IQ_TIMEOUT)
                emit(event="vcard_set", tag=tag)
            elif cmd == "vcard_get":
                iq = await self["xep_0054"].get_vcard(c["to"], cached=False, timeout=IQ_TIMEOUT)
                v = iq["vcard_temp"]
                nick = v["NICKNAME"]  # a list: NICKNAME holds comma-separated names
                if isinstance(nick, list):
                    nick = ",".join(nick)
                emit(event="vcard", tag=tag, **{"from": str(iq["from"])}, fn=v["FN"], nick=nick or "")
        except IqError as e:
            emit(event="iq_error", tag=tag, cmd=cmd,
                 condition=e.iq["error"]["condition"], text=e.iq["error"]["text"])
        except IqTimeout:
            emit(event="iq_error", tag=tag, cmd=cmd, condition="timeout", text="")


async def main(a):
    c = FedClient(a)
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
    p.add_argument("--mech", help="the only SASL mechanism to use (see slixclient.py)")
    p.add_argument("--register", action="store_true", help="create the account first (XEP-0077)")
    p.add_argument("--max-time", type=float, default=60, help="exit 3 after this many seconds")
    p.add_argument("-v", "--verbose", action="store_true", help="slixmpp debug log on stderr")
    a = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.ERROR, format="%(levelname)s %(message)s")
    sys.exit(asyncio.run(main(a)))
