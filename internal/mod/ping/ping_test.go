package ping

import (
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

func TestPing(t *testing.T) {
	r := routertest.NewRouter(router.Config{
		Domain:   jid.MustParse("example.org"),
		Accounts: routertest.Accounts{"bob": true},
	})
	Register(r)
	s := routertest.Bind(t, r, "alice@example.org/phone")
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
			iq := xmlstream.New(xmlstream.NSClient, "iq", "type", tt.typ, "id", "p1", "to", tt.to).
				Append(xmlstream.New(NS, "ping"))
			reply := routertest.Ask(t, r, s, iq)
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
