package server

import (
	"testing"

	"casp3r/internal/xmlstream"
	"casp3r/internal/xmpptest"
)

// Matchers shared with the other packages' tests.
var (
	isMessage  = xmpptest.IsMessage
	isPresence = xmpptest.IsPresence
	byID       = xmpptest.ByID
)

// rosterSub returns the subscription of contact in a roster push or result.
func rosterItem(contact string) func(*xmlstream.Element) bool {
	return func(e *xmlstream.Element) bool {
		q := e.Child("jabber:iq:roster", "query")
		if e.Name.Local != "iq" || q == nil {
			return false
		}
		for _, it := range q.Children() {
			if it.Get("jid") == contact {
				return true
			}
		}
		return false
	}
}

func subOf(e *xmlstream.Element, contact string) string {
	for _, it := range e.Child("jabber:iq:roster", "query").Children() {
		if it.Get("jid") == contact {
			return it.Get("subscription")
		}
	}
	return ""
}

// TestChatBetweenTwoUsers walks what two people do on first contact: add
// each other, approve, see each other online, chat, and get messages sent
// while offline.
func TestChatBetweenTwoUsers(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "a-pass")
	s.addUser("bob", "b-pass")
	alice := xmpptest.Login(t, s.addr(), testDomain, "alice", "a-pass", "pc")
	bob := xmpptest.Login(t, s.addr(), testDomain, "bob", "b-pass", "phone")
	aliceJID, bobJID := "alice@"+testDomain, "bob@"+testDomain
	for _, c := range []*xmpptest.Client{alice, bob} {
		c.SendRaw("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
		if r := c.Expect("roster", byID("r1")); r.Get("type") != "result" {
			t.Fatalf("roster get: %s", r)
		}
		c.SendRaw("<presence/>")
	}
	// Each sees its own presence reflected? Not required; subscribe now.
	alice.SendRaw("<presence to='" + bobJID + "' type='subscribe'/>")
	req := bob.Expect("subscription request", isPresence(aliceJID, "subscribe"))
	_ = req
	bob.SendRaw("<presence to='" + aliceJID + "' type='subscribed'/>")
	alice.Expect("subscribed", isPresence(bobJID, "subscribed"))
	alice.Expect("bob online", isPresence(bobJID+"/phone", ""))
	bob.SendRaw("<presence to='" + aliceJID + "' type='subscribe'/>")
	alice.Expect("subscription request", isPresence(bobJID, "subscribe"))
	alice.SendRaw("<presence to='" + bobJID + "' type='subscribed'/>")
	bob.Expect("alice online", isPresence(aliceJID+"/pc", ""))

	for _, tc := range []struct {
		c       *xmpptest.Client
		contact string
	}{{alice, bobJID}, {bob, aliceJID}} {
		tc.c.SendRaw("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
		r := tc.c.Expect("roster", byID("r2"))
		if got := subOf(r, tc.contact); got != "both" {
			t.Errorf("%s's roster: %s has subscription %q, want both (%s)", tc.c.JID, tc.contact, got, r)
		}
	}

	alice.SendRaw("<message to='" + bobJID + "' type='chat' id='m1'><body>hello bob</body></message>")
	m := bob.Expect("message", isMessage("hello bob"))
	if m.Get("from") != aliceJID+"/pc" {
		t.Fatalf("from %q", m.Get("from"))
	}
	bob.SendRaw("<message to='" + m.Get("from") + "' type='chat'><body>hi alice</body></message>")
	alice.Expect("reply", isMessage("hi alice"))

	bob.Close()
	alice.Expect("bob offline", isPresence(bobJID+"/phone", "unavailable"))
	alice.SendRaw("<message to='" + bobJID + "' type='chat'><body>while you were away</body></message>")
	// A ping round trip proves the message was processed (stored).
	alice.SendRaw("<iq type='get' id='p1' to='" + testDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	alice.Expect("ping", byID("p1"))

	bob = xmpptest.Login(t, s.addr(), testDomain, "bob", "b-pass", "phone")
	bob.SendRaw("<presence/>")
	off := bob.Expect("offline message", isMessage("while you were away"))
	if off.Child("urn:xmpp:delay", "delay") == nil {
		t.Errorf("offline message without delay: %s", off)
	}
	alice.Expect("bob back", isPresence(bobJID+"/phone", ""))
}

func TestMessageToUnknownUser(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "a")
	alice := xmpptest.Login(t, s.addr(), testDomain, "alice", "a", "pc")
	alice.SendRaw("<message to='nobody@" + testDomain + "' id='x1'><body>hi</body></message>")
	e := alice.Expect("error", byID("x1"))
	if e.Get("type") != "error" || e.Child("", "error").Child(stanzaNS, "service-unavailable") == nil {
		t.Fatalf("got %s", e)
	}
	alice.SendRaw("<message to='bad@@jid' id='x2'><body>hi</body></message>")
	e = alice.Expect("error", byID("x2"))
	if e.Child("", "error").Child(stanzaNS, "jid-malformed") == nil {
		t.Fatalf("got %s", e)
	}
	alice.SendRaw("<message to='someone@remote.example' id='x3'><body>hi</body></message>")
	e = alice.Expect("error", byID("x3"))
	if e.Child("", "error").Child(stanzaNS, "remote-server-not-found") == nil {
		t.Fatalf("got %s", e)
	}
}
