package routertest

import (
	"context"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

func TestSession(t *testing.T) {
	s := NewSession(jid.MustParse("alice@example.org/phone"))
	if got, want := s.JID().String(), "alice@example.org/phone"; got != want {
		t.Errorf("JID = %q, want %q", got, want)
	}
	if got := s.Take(); len(got) != 0 {
		t.Errorf("Take before Send = %v, want none", got)
	}
	a, b := xmlstream.New(xmlstream.NSClient, "message"), xmlstream.New(xmlstream.NSClient, "presence")
	s.Send(a)
	s.Send(b)
	if got := s.Take(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("Take = %v, want [%s %s]", got, a, b)
	}
	if got := s.Take(); len(got) != 0 {
		t.Errorf("second Take = %v, want none", got)
	}
	if s.Closed() != nil {
		t.Errorf("Closed = %v before Close", s.Closed())
	}
	e := stanza.StreamErr("conflict", "replaced")
	s.Close(e)
	if got := s.Closed(); got != e {
		t.Errorf("Closed = %v, want %v", got, e)
	}
}

func TestAccounts(t *testing.T) {
	tests := []struct {
		name string
		a    Accounts
		user string
		want bool
	}{
		{"present", Accounts{"bob": true}, "bob", true},
		{"absent", Accounts{"bob": true}, "carol", false},
		{"false", Accounts{"bob": false}, "bob", false},
		{"nil", nil, "bob", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.a.AccountExists(context.Background(), tt.user)
			if err != nil || got != tt.want {
				t.Errorf("AccountExists(%q) = %v, %v; want %v, nil", tt.user, got, err, tt.want)
			}
		})
	}
}

// echo replies to every iq with an empty result.
type echo struct{}

func (echo) HandleIQ(_ context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	return xmlstream.New(xmlstream.NSClient, "iq", "type", "result", "id", iq.Get("id")), nil
}

func TestRouterBindAsk(t *testing.T) {
	r := NewRouter(router.Config{Domain: jid.MustParse("example.org"), Accounts: Accounts{"bob": true}})
	r.HandleIQ("urn:test", "q", echo{})
	s := Bind(t, r, "alice@example.org/phone")
	if got, want := s.JID().String(), "alice@example.org/phone"; got != want {
		t.Errorf("JID = %q, want %q", got, want)
	}
	if _, ok := r.Lookup(s.JID()); !ok {
		t.Fatal("session not bound")
	}
	iq := xmlstream.New(xmlstream.NSClient, "iq", "type", "get", "id", "x1", "to", "example.org").
		Append(xmlstream.New("urn:test", "q"))
	reply := Ask(t, r, s, iq)
	if got, want := iq.Get("from"), "alice@example.org/phone"; got != want {
		t.Errorf("from = %q, want %q", got, want)
	}
	if got, want := reply.Get("type"), "result"; got != want {
		t.Errorf("reply = %s, want a result", reply)
	}
	if got, want := reply.Get("id"), "x1"; got != want {
		t.Errorf("id = %q, want %q", got, want)
	}
	// The no-op defaults take presence and a message for the offline bob
	// silently.
	r.RouteFromClient(context.Background(), xmlstream.New(xmlstream.NSClient, "presence", "from", "alice@example.org/phone"))
	r.RouteFromClient(context.Background(), xmlstream.New(xmlstream.NSClient, "message",
		"from", "alice@example.org/phone", "to", "bob@example.org"))
	if got := s.Take(); len(got) != 0 {
		t.Errorf("got %d stanzas, want none: %v", len(got), got)
	}
}
