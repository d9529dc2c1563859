//go:build integration

package interop

import (
	"fmt"
	"strings"
	"testing"
)

// rosterShows accepts a roster event (kind "roster" or "roster_push") that
// lists jid with the given subscription state.
func rosterShows(kind, jid, subscription string) func(event) bool {
	return func(e event) bool {
		if e.str("event") != kind {
			return false
		}
		items, _ := e["items"].(map[string]any)
		got, _ := items[jid].(string)
		return got == subscription
	}
}

// checkSession checks the "session" event of a slixmpp client that was told
// to use SASL mechanism mech.
func checkSession(t *testing.T, e event, wantJID, mech string) {
	t.Helper()
	if got := bare(e.str("jid")); got != wantJID {
		t.Errorf("bound JID %q, want %s/<resource>", e.str("jid"), wantJID)
	}
	if got := e.str("mech"); got != mech {
		t.Errorf("%s logged in with SASL %q, want %s", wantJID, got, mech)
	}
	if tls := e.str("tls"); !strings.HasPrefix(tls, "TLSv1.") || tls == "TLSv1.1" || tls == "TLSv1" {
		t.Errorf("%s session runs over %q, want TLS 1.2 or 1.3 (STARTTLS)", wantJID, tls)
	}
}

// TestSlixmppRegisterSubscribeChatOffline: one account made by the admin
// (`casp3r user add`), one made by the client (XEP-0077); both log in with
// SCRAM-SHA-256 over STARTTLS, add each other, see each other online, chat,
// and a message sent while one is offline arrives when it comes back.
func TestSlixmppRegisterSubscribeChatOffline(t *testing.T) {
	t.Parallel()
	needPython(t)
	s := newServer(t, serverOptions{registration: "open"})
	s.start()
	const alicePW, bobPW = "alice-Secret-1", "bob-Secret-2"
	const mech = "SCRAM-SHA-256"
	alice := s.addUser("alice", alicePW)
	bob := s.jid("bob")

	// Bob creates his account from the client.
	b := startSlix(t, s, "bob", bobPW, "--register", "--mech", mech)
	f := b.waitEvent("features", nil)
	if reg, _ := f["register"].(bool); !reg {
		t.Errorf("with registration = \"open\", pre-auth stream features lack XEP-0077's "+
			"<register xmlns='http://jabber.org/features/iq-register'/>: %v", f)
	}
	b.waitEvent("registered", nil)
	checkSession(t, b.waitEvent("session", nil), bob, mech)

	a := startSlix(t, s, "alice", alicePW, "--mech", mech)
	checkSession(t, a.waitEvent("session", nil), alice, mech)

	// They add each other; each approves the other's request.
	a.send(map[string]string{"cmd": "subscribe", "to": bob})
	b.send(map[string]string{"cmd": "subscribe", "to": alice})
	for _, p := range []struct {
		c    *clientProc
		peer string
	}{{a, bob}, {b, alice}} {
		p.c.waitFor(fmt.Sprintf("a roster push with %s, subscription both", p.peer),
			rosterShows("roster_push", p.peer, "both"))
		p.c.send(map[string]string{"cmd": "roster"})
		p.c.waitFor(fmt.Sprintf("a roster get listing %s with subscription both", p.peer),
			rosterShows("roster", p.peer, "both"))
	}

	// Each sees the other online.
	a.waitEvent("presence", map[string]string{"from": bob, "type": "available"})
	b.waitEvent("presence", map[string]string{"from": alice, "type": "available"})

	// They chat.
	const hiBob, hiAlice = "Hi Bob! <&> 🎉", "Hello Alice, über-nice"
	a.send(map[string]string{"cmd": "send", "to": bob, "body": hiBob})
	if m := b.waitEvent("message", map[string]string{"from": alice, "body": hiBob}); m.str("type") != "chat" {
		t.Errorf("Bob got the message with type %q, want chat", m.str("type"))
	}
	b.send(map[string]string{"cmd": "send", "to": alice, "body": hiAlice})
	a.waitEvent("message", map[string]string{"from": bob, "body": hiAlice})

	// Bob goes offline; Alice sees it and writes to him anyway.
	b.quit()
	a.waitEvent("presence", map[string]string{"from": bob, "type": "unavailable"})
	const whileAway = "sent while you were away"
	a.send(map[string]string{"cmd": "send", "to": bob, "body": whileAway})
	a.ping() // the server has handled (stored) the message

	b2 := startSlix(t, s, "bob", bobPW, "--mech", mech)
	checkSession(t, b2.waitEvent("session", nil), bob, mech)
	m := b2.waitEvent("message", map[string]string{"from": alice, "body": whileAway})
	if delayed, _ := m["delayed"].(bool); !delayed {
		t.Errorf("offline message delivered without an XEP-0203 <delay xmlns='urn:xmpp:delay'/> stamp (XEP-0160): %v", m)
	}
	b2.quit()
	a.quit()
}

// TestSlixmppDefaultLogin: slixmpp as apps built on it use it (Debian 12's
// python3-slixmpp 1.8.3, no mechanism forced: it picks the strongest offered,
// -PLUS first) can log in.
func TestSlixmppDefaultLogin(t *testing.T) {
	t.Parallel()
	needPython(t)
	s := newServer(t, serverOptions{})
	s.start()
	const pw = "default-login-pw"
	alice := s.addUser("alice", pw)
	a := startSlix(t, s, "alice", pw)
	e := a.waitEvent("session", nil)
	if got := bare(e.str("jid")); got != alice {
		t.Errorf("bound JID %q, want %s/<resource>", e.str("jid"), alice)
	}
	t.Logf("slixmpp logged in with %s over %s", e.str("mech"), e.str("tls"))
	a.quit()
}

// TestGoSendxmppToSlixmpp: go-sendxmpp sends a message from Alice to Bob,
// over STARTTLS and over direct TLS, while Bob is online with slixmpp.
func TestGoSendxmppToSlixmpp(t *testing.T) {
	t.Parallel()
	sendxmpp := lookTool(t, "go-sendxmpp", "Debian: apt-get install go-sendxmpp")
	needPython(t)
	s := newServer(t, serverOptions{})
	s.start()
	const pw = "pw-for-both"
	alice := s.addUser("alice", pw)
	s.addUser("bob", pw)

	b := startSlix(t, s, "bob", pw, "--mech", "SCRAM-SHA-256")
	b.waitEvent("session", nil)
	b.ping() // Bob's initial presence has been handled: he is online

	for _, tc := range []struct {
		name  string
		port  int
		flags []string
	}{
		{"STARTTLS", s.c2s, nil},
		{"direct TLS", s.tls, []string{"-t"}},
	} {
		body := "hello from go-sendxmpp over " + tc.name
		argv := append([]string{sendxmpp, "-n", "-u", alice, "-p", pw,
			"-j", fmt.Sprintf("%s:%d", s.host, tc.port)}, tc.flags...)
		argv = append(argv, s.jid("bob"))
		r := runCmd(cmdTimeout, body+"\n", []string{"HOME=" + t.TempDir()}, argv...)
		if r.code != 0 {
			t.Errorf("go-sendxmpp over %s failed: %v", tc.name, r)
			continue
		}
		b.waitEvent("message", map[string]string{"from": alice, "body": body})
	}
	b.quit()
}
