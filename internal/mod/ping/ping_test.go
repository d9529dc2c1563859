package ping

import (
	"context"
	"sync"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

type fakeSession struct {
	jid jid.JID

	mu   sync.Mutex
	sent []*xmlstream.Element
}

func (s *fakeSession) JID() jid.JID              { return s.jid }
func (s *fakeSession) Close(*stanza.StreamError) {}
func (s *fakeSession) Send(st *xmlstream.Element) {
	s.mu.Lock()
	s.sent = append(s.sent, st)
	s.mu.Unlock()
}

func (s *fakeSession) take() []*xmlstream.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sent
	s.sent = nil
	return out
}

type fakeDeps struct{}

func (fakeDeps) Outbound(context.Context, *xmlstream.Element) error             { return nil }
func (fakeDeps) Inbound(context.Context, *xmlstream.Element) error              { return nil }
func (fakeDeps) Ended(context.Context, router.Resource, []jid.JID)              {}
func (fakeDeps) StoreOffline(context.Context, string, *xmlstream.Element) error { return nil }
func (fakeDeps) AccountExists(_ context.Context, user string) (bool, error) {
	return user == "bob", nil
}

func TestPing(t *testing.T) {
	r := router.New(router.Config{
		Domain:   jid.MustParse("example.org"),
		Presence: fakeDeps{},
		Offline:  fakeDeps{},
		Accounts: fakeDeps{},
	})
	Register(r)
	s := &fakeSession{jid: jid.MustParse("alice@example.org/phone")}
	if _, err := r.Bind(s, s.jid.Bare(), "phone"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		to   string
		typ  string
		cond string // "" for a result
	}{
		{"domain", "example.org", "get", ""},
		{"own bare JID", "alice@example.org", "get", ""},
		{"no to", "", "get", ""},
		{"other account", "bob@example.org", "get", "service-unavailable"},
		{"unknown account", "carol@example.org", "get", "service-unavailable"},
		{"set", "example.org", "set", "service-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iq := xmlstream.New(xmlstream.NSClient, "iq", "type", tt.typ, "id", "p1",
				"from", s.jid.String(), "to", tt.to).Append(xmlstream.New(NS, "ping"))
			r.RouteFromClient(context.Background(), iq)
			got := s.take()
			if len(got) != 1 {
				t.Fatalf("got %d replies, want 1", len(got))
			}
			reply := got[0]
			if got, want := reply.Get("id"), "p1"; got != want {
				t.Errorf("id = %q, want %q", got, want)
			}
			if tt.cond == "" {
				if reply.Get("type") != "result" || len(reply.Nodes) != 0 {
					t.Errorf("reply = %s, want an empty result", reply)
				}
				return
			}
			if e := stanza.ParseError(reply); reply.Get("type") != "error" || e == nil || e.Condition != tt.cond {
				t.Errorf("reply = %s, want error %s", reply, tt.cond)
			}
		})
	}
}
