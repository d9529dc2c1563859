package version

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

func TestVersion(t *testing.T) {
	tests := []struct {
		name    string
		version string // constructor argument
		to      string
		typ     string
		want    string // reported version; "" when an error is expected
		cond    string
	}{
		{"domain", "1.2.3", "example.org", "get", "1.2.3", ""},
		{"empty version", "", "example.org", "get", "unknown", ""},
		{"own account", "1.2.3", "alice@example.org", "get", "", "service-unavailable"},
		{"other account", "1.2.3", "bob@example.org", "get", "", "service-unavailable"},
		{"set", "1.2.3", "example.org", "set", "", "service-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := router.New(router.Config{
				Domain:   jid.MustParse("example.org"),
				Presence: fakeDeps{},
				Offline:  fakeDeps{},
				Accounts: fakeDeps{},
			})
			New(tt.version).Register(r)
			s := &fakeSession{jid: jid.MustParse("alice@example.org/phone")}
			if _, err := r.Bind(s, s.jid.Bare(), "phone"); err != nil {
				t.Fatal(err)
			}
			iq := xmlstream.New(xmlstream.NSClient, "iq", "type", tt.typ, "id", "v1",
				"from", s.jid.String(), "to", tt.to).Append(xmlstream.New(NS, "query"))
			r.RouteFromClient(context.Background(), iq)
			got := s.take()
			if len(got) != 1 {
				t.Fatalf("got %d replies, want 1", len(got))
			}
			reply := got[0]
			if tt.cond != "" {
				if e := stanza.ParseError(reply); reply.Get("type") != "error" || e == nil || e.Condition != tt.cond {
					t.Errorf("reply = %s, want error %s", reply, tt.cond)
				}
				return
			}
			q := reply.Child(NS, "query")
			if reply.Get("type") != "result" || q == nil {
				t.Fatalf("reply = %s, want a result with a query", reply)
			}
			if got, want := q.Child(NS, "name").Text(), Name; got != want {
				t.Errorf("name = %q, want %q", got, want)
			}
			if got, want := q.Child(NS, "version").Text(), tt.want; got != want {
				t.Errorf("version = %q, want %q", got, want)
			}
			if q.Child(NS, "os") != nil {
				t.Errorf("os disclosed: %s", q)
			}
		})
	}
}
