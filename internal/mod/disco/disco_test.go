package disco

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// setup returns a router serving example.org with m wired and a session
// bound for alice@example.org/phone.
func setup(t *testing.T, m *Module) (*router.Router, *routertest.Session) {
	t.Helper()
	r := routertest.NewRouter(router.Config{
		Domain:   jid.MustParse("example.org"),
		Accounts: routertest.Accounts{"alice": true, "bob": true},
	})
	m.Register(r)
	return r, routertest.Bind(t, r, "alice@example.org/phone")
}

func query(ns, to, typ, node string) *xmlstream.Element {
	return xmlstream.New(xmlstream.NSClient, "iq", "type", typ, "id", "q1", "to", to).
		Append(xmlstream.New(ns, "query", "node", node))
}

func identities(q *xmlstream.Element) []string {
	var out []string
	for _, c := range q.Children() {
		if c.Is(NSInfo, "identity") {
			out = append(out, c.Get("category")+"/"+c.Get("type")+"/"+c.Get("name"))
		}
	}
	return out
}

func features(q *xmlstream.Element) []string {
	var out []string
	for _, c := range q.Children() {
		if c.Is(NSInfo, "feature") {
			out = append(out, c.Get("var"))
		}
	}
	return out
}

func TestInfo(t *testing.T) {
	m := New(jid.MustParse("example.org"), nil, []string{"urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:ping", ""})
	m.AccountFeatures = []string{"urn:xmpp:pep"}
	r, s := setup(t, m)
	tests := []struct {
		name       string
		to         string
		identities []string
		features   []string
	}{
		{"domain", "example.org", []string{"server/im/"},
			[]string{NSInfo, NSItems, "jabber:iq:version", "urn:xmpp:ping"}},
		{"own account", "alice@example.org", []string{"account/registered/"},
			[]string{NSInfo, "urn:xmpp:pep"}},
		{"other account", "bob@example.org", []string{"account/registered/"},
			[]string{NSInfo, "urn:xmpp:pep"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := routertest.Ask(t, r, s, query(NSInfo, tt.to, "get", ""))
			if got, want := reply.Get("type"), "result"; got != want {
				t.Fatalf("type = %q, want %q: %s", got, want, reply)
			}
			if got, want := reply.Get("from"), tt.to; got != want {
				t.Errorf("from = %q, want %q", got, want)
			}
			q := reply.Child(NSInfo, "query")
			if q == nil {
				t.Fatalf("no query in %s", reply)
			}
			if got := identities(q); !slices.Equal(got, tt.identities) {
				t.Errorf("identities = %q, want %q", got, tt.identities)
			}
			if got := features(q); !slices.Equal(got, tt.features) {
				t.Errorf("features = %q, want %q", got, tt.features)
			}
		})
	}
}

func TestInfoIdentities(t *testing.T) {
	ids := []Identity{{Category: "server", Type: "im", Name: "Home"}, {Category: "pubsub", Type: "pep"}}
	m := New(jid.MustParse("example.org"), ids, nil)
	ids[0].Name = "changed" // New keeps its own copy
	r, s := setup(t, m)
	q := routertest.Ask(t, r, s, query(NSInfo, "example.org", "get", "")).Child(NSInfo, "query")
	if got, want := identities(q), []string{"server/im/Home", "pubsub/pep/"}; !slices.Equal(got, want) {
		t.Errorf("identities = %q, want %q", got, want)
	}
	if got, want := features(q), []string{NSInfo, NSItems}; !slices.Equal(got, want) {
		t.Errorf("features = %q, want %q", got, want)
	}
}

func TestItems(t *testing.T) {
	m := New(jid.MustParse("example.org"), nil, nil)
	m.Items = []Item{{JID: jid.MustParse("muc.example.org"), Name: "Rooms"}, {JID: jid.MustParse("upload.example.org")}}
	r, s := setup(t, m)
	tests := []struct {
		name  string
		to    string
		items []string
	}{
		{"domain", "example.org", []string{"muc.example.org/Rooms", "upload.example.org/"}},
		{"account", "bob@example.org", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := routertest.Ask(t, r, s, query(NSItems, tt.to, "get", ""))
			q := reply.Child(NSItems, "query")
			if reply.Get("type") != "result" || q == nil {
				t.Fatalf("reply = %s", reply)
			}
			var got []string
			for _, c := range q.Children() {
				if !c.Is(NSItems, "item") {
					t.Errorf("unexpected child %s", c)
				}
				got = append(got, c.Get("jid")+"/"+c.Get("name"))
			}
			if !slices.Equal(got, tt.items) {
				t.Errorf("items = %q, want %q", got, tt.items)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	m := New(jid.MustParse("example.org"), nil, nil)
	r, s := setup(t, m)
	tests := []struct {
		name string
		iq   *xmlstream.Element
		cond string
	}{
		{"info node", query(NSInfo, "example.org", "get", "x"), "item-not-found"},
		{"items node", query(NSItems, "example.org", "get", "x"), "item-not-found"},
		{"account node", query(NSInfo, "bob@example.org", "get", "x"), "item-not-found"},
		{"info set", query(NSInfo, "example.org", "set", ""), "service-unavailable"},
		{"items set", query(NSItems, "example.org", "set", ""), "service-unavailable"},
		{"no such account", query(NSInfo, "carol@example.org", "get", ""), "service-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := routertest.Ask(t, r, s, tt.iq)
			if got, want := reply.Get("type"), "error"; got != want {
				t.Fatalf("type = %q, want %q: %s", got, want, reply)
			}
			if e := stanza.ParseError(reply); e == nil || e.Condition != tt.cond {
				t.Errorf("error = %v, want %s", e, tt.cond)
			}
		})
	}
}

// TestReplyIndependent checks that replies do not share elements, so that
// a session changing one cannot affect the next.
func TestReplyIndependent(t *testing.T) {
	m := New(jid.MustParse("example.org"), nil, []string{"a"})
	h := m.HandleInfo()
	iq := query(NSInfo, "example.org", "get", "")
	iq.SetAttr("from", "alice@example.org/phone")
	a, err := h.HandleIQ(context.Background(), iq)
	if err != nil {
		t.Fatal(err)
	}
	a.Append(xmlstream.New(NSInfo, "feature", "var", "junk"))
	b, err := h.HandleIQ(context.Background(), iq)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "junk") {
		t.Errorf("second reply sees the first one's change: %s", b)
	}
}

func TestHandlerWithoutQuery(t *testing.T) {
	m := New(jid.MustParse("example.org"), nil, nil)
	iq := xmlstream.New(xmlstream.NSClient, "iq", "type", "get", "to", "example.org", "from", "alice@example.org/a").
		Append(xmlstream.New("urn:other", "query"))
	for _, h := range []router.IQHandler{m.HandleInfo(), m.HandleItems()} {
		if _, err := h.HandleIQ(context.Background(), iq); !errors.Is(err, stanza.BadRequest) {
			t.Errorf("err = %v, want bad-request", err)
		}
	}
}
