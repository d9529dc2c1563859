// Line-driven XMPP client on @xmpp/client (xmpp.js), used by the CASP3R
// interop tests (test/interop/websocket_test.go).
//
//   node wsclient.mjs --service wss://127.0.0.9:5443/xmpp-websocket \
//     --domain interop.test --user alice --password pw [--max-time 60]
//
// It logs in, sends initial presence and then prints one JSON object per line
// for everything it sees ({"event":"online"|"message"|"presence"|"error"|...}).
// It reads JSON commands from stdin, one per line:
//   {"cmd":"send","to":"bob@interop.test","body":"hi"}   chat message
//   {"cmd":"ping","tag":"t1"}     XEP-0199 ping to the server, answered by
//                                 {"event":"pong","tag":"t1"}
//   {"cmd":"quit"}                close the stream, exit 0
// Closing stdin is the same as quit. Self-signed test certificates need
// NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment. On Node 20 the global
// WebSocket needs --experimental-websocket.
import { createInterface } from "node:readline";
import { client, xml } from "@xmpp/client";

const opts = { resource: "xmppjs", maxTime: 60 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "").replace(/-(\w)/g, (_, c) => c.toUpperCase());
  opts[key] = argv[i + 1];
}
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");
for (const k of ["service", "domain", "user", "password"]) {
  if (!opts[k]) {
    emit({ event: "error", error: `missing --${k}` });
    process.exit(2);
  }
}
if (typeof globalThis.WebSocket !== "function") {
  emit({ event: "error", error: "no global WebSocket (Node 20 needs --experimental-websocket)" });
  process.exit(2);
}

const xmpp = client({
  service: opts.service,
  domain: opts.domain,
  username: opts.user,
  password: opts.password,
  resource: opts.resource,
});
// Tests want to see a failure, not a client that quietly reconnects.
xmpp.reconnect.stop();

let quitting = false;
async function quit(code) {
  if (quitting) return;
  quitting = true;
  try {
    await xmpp.stop();
  } catch (err) {
    emit({ event: "error", error: `stop: ${err}` });
  }
  emit({ event: "closed" });
  process.exit(code);
}

const timer = setTimeout(() => {
  emit({ event: "timeout", after_s: Number(opts.maxTime) });
  process.exit(3);
}, Number(opts.maxTime) * 1000);
timer.unref();

xmpp.on("error", (err) => emit({ event: "error", error: String(err) }));
xmpp.on("disconnect", () => {
  if (!quitting) {
    emit({ event: "disconnected" });
    process.exit(1);
  }
});

xmpp.on("stanza", (stanza) => {
  if (stanza.is("message")) {
    const body = stanza.getChildText("body");
    if (body === null) return;
    emit({
      event: "message",
      from: stanza.attrs.from || "",
      type: stanza.attrs.type || "normal",
      body,
      delayed: stanza.getChild("delay", "urn:xmpp:delay") !== undefined,
    });
  } else if (stanza.is("presence")) {
    emit({ event: "presence", from: stanza.attrs.from || "", type: stanza.attrs.type || "available" });
  }
});

xmpp.on("online", async (address) => {
  await xmpp.send(xml("presence"));
  emit({ event: "online", jid: address.toString() });
  const rl = createInterface({ input: process.stdin });
  rl.on("line", async (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (err) {
      emit({ event: "error", error: `bad command: ${err}` });
      return;
    }
    if (cmd.cmd === "send") {
      await xmpp.send(xml("message", { type: "chat", to: cmd.to }, xml("body", {}, cmd.body)));
      emit({ event: "sent", to: cmd.to, body: cmd.body });
    } else if (cmd.cmd === "ping") {
      try {
        await xmpp.iqCaller.request(xml("iq", { type: "get", to: opts.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })), 15000);
        emit({ event: "pong", tag: cmd.tag });
      } catch (err) {
        emit({ event: "error", error: `ping: ${err}`, tag: cmd.tag });
      }
    } else if (cmd.cmd === "quit") {
      await quit(0);
    } else {
      emit({ event: "error", error: `unknown command ${cmd.cmd}` });
    }
  });
  rl.on("close", () => quit(0));
});

xmpp.start().catch((err) => {
  emit({ event: "error", error: `start: ${err}` });
  process.exit(1);
});
