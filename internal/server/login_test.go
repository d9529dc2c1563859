package server

import (
	"net"
	"slices"
	"strings"
	"testing"

	"casp3r/internal/config"
	"casp3r/internal/xmpptest"
)

func TestLoginMechanisms(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "secret")
	tests := []struct {
		mech, cb, password string
		wantFailure        string
	}{
		{"SCRAM-SHA-256", "", "secret", ""},
		{"SCRAM-SHA-1", "", "secret", ""},
		{"SCRAM-SHA-256-PLUS", "tls-exporter", "secret", ""},
		{"SCRAM-SHA-256-PLUS", "tls-server-end-point", "secret", ""},
		{"SCRAM-SHA-1-PLUS", "tls-exporter", "secret", ""},
		{"SCRAM-SHA-256", "", "wrong", "not-authorized"},
		{"PLAIN", "", "secret", ""},
		{"PLAIN", "", "wrong", "not-authorized"},
	}
	for _, tc := range tests {
		t.Run(tc.mech+"/"+tc.cb+"/"+tc.password, func(t *testing.T) {
			c := xmpptest.Dial(t, s.addr(), testDomain)
			c.StartTLS()
			if !slices.Contains(c.Mechanisms(), strings.TrimSuffix(tc.mech, "")) {
				t.Fatalf("%s not offered: %v", tc.mech, c.Mechanisms())
			}
			var got string
			if tc.mech == "PLAIN" {
				got = c.AuthPlain("alice", tc.password)
			} else {
				got = c.AuthSCRAM(tc.mech, "alice", tc.password, tc.cb)
			}
			if got != tc.wantFailure {
				t.Fatalf("auth result %q, want %q", got, tc.wantFailure)
			}
			if got == "" {
				if j := c.Bind("laptop"); j != "alice@"+testDomain+"/laptop" {
					t.Fatalf("bound %q", j)
				}
			}
		})
	}
}

func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	s := runServer(t, nil)
	c := xmpptest.Dial(t, s.addr(), testDomain)
	c.StartTLS()
	if got := c.AuthSCRAM("SCRAM-SHA-256", "nobody", "x", ""); got != "not-authorized" {
		t.Fatalf("got %q, want not-authorized", got)
	}
}

func TestTLSRequired(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "secret")
	c := xmpptest.Dial(t, s.addr(), testDomain)
	tls := c.Features.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls")
	if tls == nil || tls.Child("", "required") == nil {
		t.Fatalf("features before TLS: %s", c.Features)
	}
	if m := c.Mechanisms(); len(m) != 0 {
		t.Fatalf("mechanisms offered before TLS: %v", m)
	}
	if got := c.AuthPlain("alice", "secret"); got != "encryption-required" {
		t.Fatalf("PLAIN before TLS: %q, want encryption-required", got)
	}
}

func TestPlainSwitchedOff(t *testing.T) {
	s := runServer(t, func(c *config.Config) { c.C2S.AllowPlain = false })
	c := xmpptest.Dial(t, s.addr(), testDomain)
	c.StartTLS()
	if slices.Contains(c.Mechanisms(), "PLAIN") {
		t.Fatalf("PLAIN offered though switched off: %v", c.Mechanisms())
	}
	if got := c.AuthPlain("alice", "secret"); got != "invalid-mechanism" {
		t.Fatalf("got %q, want invalid-mechanism", got)
	}
}

func TestDirectTLS(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "secret")
	c := xmpptest.DialTLS(t, s.Addr(ListenerDirectTLS).String(), testDomain)
	if c.Features.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls") != nil {
		t.Fatal("starttls offered on a direct TLS stream")
	}
	if got := c.AuthSCRAM("SCRAM-SHA-256-PLUS", "alice", "secret", "tls-exporter"); got != "" {
		t.Fatalf("auth: %s", got)
	}
	c.Bind("")
	if !strings.HasPrefix(c.JID, "alice@"+testDomain+"/") || len(c.JID) <= len("alice@"+testDomain+"/") {
		t.Fatalf("server-generated resource: %q", c.JID)
	}
}

func TestResourceConflictKicksOld(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "secret")
	old := xmpptest.Login(t, s.addr(), testDomain, "alice", "secret", "phone")
	xmpptest.Login(t, s.addr(), testDomain, "alice", "secret", "phone")
	if got := old.ExpectStreamError(); got != "conflict" {
		t.Fatalf("old session got %q, want conflict", got)
	}
}

func TestSessionAndPing(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "secret")
	c := xmpptest.Login(t, s.addr(), testDomain, "alice", "secret", "pc")
	c.SendRaw("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
	if el := c.Expect("session result", byID("s1")); el.Get("type") != "result" {
		t.Fatalf("session: %s", el)
	}
	c.SendRaw("<iq type='get' id='p1' to='" + testDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := c.Expect("ping result", byID("p1")); el.Get("type") != "result" || el.Get("from") != testDomain {
		t.Fatalf("ping: %s", el)
	}
	c.SendRaw("<iq type='get' id='v1' to='" + testDomain + "'><query xmlns='jabber:iq:version'/></iq>")
	v := c.Expect("version result", byID("v1"))
	if v.Child("jabber:iq:version", "query").Child("", "name").Text() != "CASP3R" {
		t.Fatalf("version: %s", v)
	}
	c.SendRaw("<iq type='get' id='d1' to='" + testDomain + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	d := c.Expect("disco result", byID("d1"))
	var features []string
	for _, f := range d.First().Children() {
		if f.Name.Local == "feature" {
			features = append(features, f.Get("var"))
		}
	}
	for _, want := range []string{"urn:xmpp:ping", "jabber:iq:version", "jabber:iq:roster", "http://jabber.org/protocol/disco#info"} {
		if !slices.Contains(features, want) {
			t.Errorf("disco#info lacks %s: %v", want, features)
		}
	}
	c.SendRaw("<iq type='get' id='u1' to='" + testDomain + "'><query xmlns='urn:example:unknown'/></iq>")
	if el := c.Expect("unknown iq error", byID("u1")); el.Get("type") != "error" || el.Child("", "error").Child(stanzaNS, "service-unavailable") == nil {
		t.Fatalf("unknown iq: %s", el)
	}
	c.Close()
}

const stanzaNS = "urn:ietf:params:xml:ns:xmpp-stanzas"

func TestShutdownClosesStreams(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "secret")
	c := xmpptest.Login(t, s.addr(), testDomain, "alice", "secret", "pc")
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(t.Context()) }()
	if got := c.ExpectStreamError(); got != "system-shutdown" {
		t.Fatalf("got %q, want system-shutdown", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", s.addr()); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestConnectionLimit(t *testing.T) {
	s := runServer(t, func(c *config.Config) { c.C2S.MaxConnections = 2 })
	s.addUser("alice", "secret")
	xmpptest.Login(t, s.addr(), testDomain, "alice", "secret", "one")
	xmpptest.Login(t, s.addr(), testDomain, "alice", "secret", "two")
	c := xmpptest.DialRaw(t, s.addr(), testDomain)
	c.SendRaw("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + testDomain + "' version='1.0'>")
	if got := c.ExpectStreamErrorAfterHeader(); got != "resource-constraint" {
		t.Fatalf("third connection: %q, want resource-constraint", got)
	}
}
