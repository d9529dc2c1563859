package version

import (
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

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
			r := routertest.NewRouter(router.Config{
				Domain:   jid.MustParse("example.org"),
				Accounts: routertest.Accounts{"bob": true},
			})
			New(tt.version).Register(r)
			s := routertest.Bind(t, r, "alice@example.org/phone")
			iq := xmlstream.New(xmlstream.NSClient, "iq", "type", tt.typ, "id", "v1", "to", tt.to).
				Append(xmlstream.New(NS, "query"))
			reply := routertest.Ask(t, r, s, iq)
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
