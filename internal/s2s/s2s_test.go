package s2s

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

func TestDialbackKey(t *testing.T) {
	secret := []byte("s3cr3t")
	k := dialbackKey(secret, "b.test", "a.test", "id1")
	if len(k) != 64 {
		t.Fatalf("key %q is not hex SHA-256", k)
	}
	tests := []struct {
		name                     string
		receiving, orig, id, key string
		want                     bool
	}{
		{"genuine", "b.test", "a.test", "id1", k, true},
		{"other stream", "b.test", "a.test", "id2", k, false},
		{"other receiver", "c.test", "a.test", "id1", k, false},
		{"swapped", "a.test", "b.test", "id1", k, false},
		{"garbage", "b.test", "a.test", "id1", "00", false},
	}
	for _, tc := range tests {
		if got := checkDialbackKey(secret, tc.receiving, tc.orig, tc.id, tc.key); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if checkDialbackKey([]byte("other"), "b.test", "a.test", "id1", k) {
		t.Error("key accepted with another secret")
	}
}

func TestResolveStaticRoute(t *testing.T) {
	s := New(Config{Routes: map[string]string{"lan.test": "192.0.2.1:5269"},
		Resolver: &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
			t.Fatal("DNS asked for a domain with a static route")
			return nil, nil
		}}})
	got, err := s.resolve(context.Background(), "lan.test")
	if err != nil || len(got) != 1 || got[0].addr != "192.0.2.1:5269" || got[0].directTLS {
		t.Fatalf("got %v, %v", got, err)
	}
}

// fakePolicy allows the domains in allowed; limited users are in limited.
type fakePolicy struct {
	allowed map[string]bool
	limited map[string]bool
}

func (p *fakePolicy) FederationAllowed(_ context.Context, domain string) bool {
	return p.allowed[domain]
}
func (p *fakePolicy) Limited(_ context.Context, user string) bool { return p.limited[user] }

// fakeRouter records what it is given.
type fakeRouter struct{ routed, bounced []string }

func (r *fakeRouter) Route(_ context.Context, st *xmlstream.Element) {
	r.routed = append(r.routed, st.Get("id"))
}

func (r *fakeRouter) Bounce(_ context.Context, st *xmlstream.Element, _ error) {
	r.bounced = append(r.bounced, st.Get("id"))
}

// TestIncomingStanzaPolicy: the policy decides for every stanza on an
// authenticated incoming stream, so denying a domain while its stream is
// open cuts it off (casp3r federation deny on a running server).
func TestIncomingStanzaPolicy(t *testing.T) {
	pol := &fakePolicy{allowed: map[string]bool{"b.test": true}, limited: map[string]bool{"kid": true}}
	r := &fakeRouter{}
	s := New(Config{Domain: jid.MustParse("a.test"), Policy: pol, Router: r})
	in := &inSession{srv: s, authed: map[string]bool{"b.test": true}}
	msg := func(id, to string) *xmlstream.Element {
		return xmlstream.New(xmlstream.NSServer, "message").SetAttr("id", id).
			SetAttr("from", "bob@b.test/phone").SetAttr("to", to)
	}
	if err := in.handleStanza(msg("m1", "alice@a.test")); err != nil {
		t.Fatalf("allowed domain: %v", err)
	}
	if err := in.handleStanza(msg("m2", "kid@a.test")); err != nil {
		t.Fatalf("to a limited user: %v", err)
	}
	pol.allowed["b.test"] = false // the admin denies b.test
	err := in.handleStanza(msg("m3", "alice@a.test"))
	var se *stanza.StreamError
	if !errors.As(err, &se) || se.Condition != "policy-violation" {
		t.Fatalf("stanza from a domain denied after it authenticated: got %v, want a policy-violation stream error", err)
	}
	if got, want := strings.Join(r.routed, ","), "m1"; got != want {
		t.Errorf("routed %q, want %q", got, want)
	}
	if got, want := strings.Join(r.bounced, ","), "m2"; got != want {
		t.Errorf("bounced %q, want %q", got, want)
	}
}
