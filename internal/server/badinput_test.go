package server

import (
	"strings"
	"testing"
	"time"

	"casp3r/internal/config"
	"casp3r/internal/xmpptest"
)

// TestBadInput sends each kind of bad input on its own connection and
// checks the stream error, while a bystander keeps being served.
func TestBadInput(t *testing.T) {
	s := runServer(t, func(c *config.Config) {
		c.Limits.StanzaBytes = 64 << 10
		c.Limits.Depth = 16
	})
	s.addUser("mallory", "m")
	s.addUser("bystander", "b")
	by := xmpptest.Login(t, s.addr(), testDomain, "bystander", "b", "pc")

	tests := []struct {
		name, send, want string
		preauth          bool
	}{
		{"malformed", "<message><body>x</message>", "not-well-formed", false},
		{"doctype", "<!DOCTYPE foo [<!ENTITY x 'y'>]>", "restricted-xml", false},
		{"comment", "<!-- hi -->", "restricted-xml", false},
		{"processing instruction", "<?evil x?>", "restricted-xml", false},
		{"oversized", "<message to='bystander@" + testDomain + "'><body>" + strings.Repeat("A", 70<<10) + "</body></message>", "policy-violation", false},
		{"deep nesting", strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40), "policy-violation", false},
		{"spoofed from", "<message from='bystander@" + testDomain + "/pc' to='bystander@" + testDomain + "'><body>fake</body></message>", "invalid-from", false},
		{"unknown top-level", "<foo xmlns='urn:example'/>", "unsupported-stanza-type", false},
		{"oversized before auth", "<iq type='get' id='1'><query xmlns='jabber:iq:register'>" + strings.Repeat("A", 20<<10) + "</query></iq>", "policy-violation", true},
		{"stanza before auth", "<message to='bystander@" + testDomain + "'><body>x</body></message>", "not-authorized", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c *xmpptest.Client
			if tc.preauth {
				c = xmpptest.Dial(t, s.addr(), testDomain)
				c.StartTLS()
			} else {
				c = xmpptest.Login(t, s.addr(), testDomain, "mallory", "m", "x")
			}
			c.SendRaw(tc.send)
			if got := c.ExpectStreamError(); got != tc.want {
				t.Fatalf("stream error %q, want %q", got, tc.want)
			}
			by.SendRaw("<iq type='get' id='alive' to='" + testDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>")
			if el := by.Expect("ping", byID("alive")); el.Get("type") != "result" {
				t.Fatalf("bystander: %s", el)
			}
		})
	}
	// Nothing mallory sent reached the bystander.
	by.SendRaw("<iq type='get' id='last' to='" + testDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := by.Next()
		if el.Get("id") == "last" {
			break
		}
		if el.Name.Local == "message" {
			t.Fatalf("bystander got %s", el)
		}
	}
}

func TestWrongStreamHeader(t *testing.T) {
	s := runServer(t, nil)
	tests := []struct{ name, header, want string }{
		{"unknown host", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='other.example' version='1.0'>", "host-unknown"},
		{"server namespace", "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='" + testDomain + "' version='1.0'>", "invalid-namespace"},
		{"bad stream ns", "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='" + testDomain + "' version='1.0'>", "invalid-namespace"},
		{"not xml", "GET / HTTP/1.1\r\n\r\n", "not-well-formed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := xmpptest.DialRaw(t, s.addr(), testDomain)
			c.SendRaw(tc.header)
			if got := c.ExpectStreamErrorAfterHeader(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestUnfinishedStanza: a logged-in client that begins a stanza and stops
// gets connection-timeout after limits.stanza_timeout, and holds nothing of
// the server meanwhile: another client is served.
func TestUnfinishedStanza(t *testing.T) {
	s := runServer(t, func(c *config.Config) { c.Limits.StanzaTimeout = config.Duration{Duration: time.Second} })
	s.addUser("mallory", "m")
	s.addUser("bystander", "b")
	c := xmpptest.Login(t, s.addr(), testDomain, "mallory", "m", "x")
	by := xmpptest.Login(t, s.addr(), testDomain, "bystander", "b", "pc")
	start := time.Now()
	c.SendRaw("<message to='bystander@" + testDomain + "'><body>and then")
	by.SendRaw("<iq type='get' id='alive' to='" + testDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := by.Expect("ping", byID("alive")); el.Get("type") != "result" {
		t.Fatalf("bystander: %s", el)
	}
	if got, want := c.ExpectStreamError(), "connection-timeout"; got != want {
		t.Fatalf("stream error %q, want %q", got, want)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("connection-timeout after %v, before the 1s stanza_timeout", d)
	}
	// The bystander sat idle between its stanzas for longer than the
	// timeout meanwhile: that is not an unfinished stanza.
	by.SendRaw("<iq type='get' id='still' to='" + testDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := by.Expect("ping", byID("still")); el.Get("type") != "result" {
		t.Fatalf("bystander after idling: %s", el)
	}
}
