//go:build integration

package interop

import "testing"

// TestXmppjsWebSocketWithSlixmpp: a browser-style client (@xmpp/client over
// RFC 7395 WebSocket) logs in and chats with a slixmpp user on STARTTLS.
func TestXmppjsWebSocketWithSlixmpp(t *testing.T) {
	t.Parallel()
	nodeArgv(t)
	needPython(t)
	s := newServer(t, serverOptions{})
	s.start()
	s.waitPort(s.https)
	const pw = "web-Socket-pw"
	alice := s.addUser("alice", pw)
	bob := s.addUser("bob", pw)

	b := startSlix(t, s, "bob", pw, "--mech", "SCRAM-SHA-256")
	b.waitEvent("session", nil)
	b.ping() // Bob is online

	n := startNode(t, s, "alice", pw)
	if on := n.waitEvent("online", nil); bare(on.str("jid")) != alice {
		t.Errorf("xmpp.js bound JID %q, want %s/<resource>", on.str("jid"), alice)
	}
	const toBob, toAlice = "hello from a WebSocket", "hello back over STARTTLS"
	n.send(map[string]string{"cmd": "send", "to": bob, "body": toBob})
	b.waitEvent("message", map[string]string{"from": alice, "body": toBob})
	// To the bare JID: the server routes it to Alice's only session. Alice's
	// initial presence was handled before her message to Bob.
	b.send(map[string]string{"cmd": "send", "to": alice, "body": toAlice})
	n.waitEvent("message", map[string]string{"from": bob, "body": toAlice})
	n.quit()
	b.quit()
}
