package router_test

import (
	"context"
	"sync"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/xmlstream"
)

// recordingOffline keeps what the router hands to offline storage.
type recordingOffline struct {
	mu     sync.Mutex
	stored []string
}

func (o *recordingOffline) StoreOffline(_ context.Context, user string, st *xmlstream.Element) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stored = append(o.stored, user+":"+st.Child("", "body").Text())
	return nil
}

func msg(from, to, typ, body string) *xmlstream.Element {
	m := xmlstream.New(xmlstream.NSClient, "message", "from", from, "to", to, "type", typ, "id", "m")
	return m.Append(xmlstream.New(xmlstream.NSClient, "body").SetText(body))
}

// TestMessageDelivery walks RFC 6121 §8.5: which resources get a message
// by address, type and priority, and when it goes to offline storage or
// bounces.
func TestMessageDelivery(t *testing.T) {
	type res struct {
		name      string
		available bool
		priority  int
	}
	tests := []struct {
		name        string
		resources   []res
		to, typ     string
		wantGot     []string // resources that receive it
		wantOffline bool
		wantError   string // condition bounced to the sender
	}{
		{"bare chat to top priority", []res{{"a", true, 5}, {"b", true, 1}}, "bob@x.test", "chat", []string{"a"}, false, ""},
		{"bare chat ties", []res{{"a", true, 5}, {"b", true, 5}}, "bob@x.test", "chat", []string{"a", "b"}, false, ""},
		{"negative priority only is offline", []res{{"a", true, -1}}, "bob@x.test", "chat", nil, true, ""},
		{"bound but not available is offline", []res{{"a", false, 0}}, "bob@x.test", "normal", nil, true, ""},
		{"full jid delivered even with negative priority", []res{{"a", true, -1}}, "bob@x.test/a", "chat", []string{"a"}, false, ""},
		{"full jid of missing resource: chat as bare", []res{{"a", true, 0}}, "bob@x.test/zz", "chat", []string{"a"}, false, ""},
		{"full jid of missing resource: headline dropped", []res{{"a", true, 0}}, "bob@x.test/zz", "headline", nil, false, ""},
		{"groupchat to bare bounces", []res{{"a", true, 0}}, "bob@x.test", "groupchat", nil, false, "service-unavailable"},
		{"offline headline dropped", nil, "bob@x.test", "headline", nil, false, ""},
		{"offline chat stored", nil, "bob@x.test", "chat", nil, true, ""},
		{"unknown account bounces", nil, "nobody@x.test", "chat", nil, false, "service-unavailable"},
		{"error type never bounces", nil, "nobody@x.test", "error", nil, false, ""},
		{"other domain without s2s", nil, "bob@elsewhere.test", "chat", nil, false, "remote-server-not-found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			off := &recordingOffline{}
			r := routertest.NewRouter(router.Config{
				Domain:   jid.MustParse("x.test"),
				Offline:  off,
				Accounts: routertest.Accounts{"alice": true, "bob": true},
			})
			alice := routertest.Bind(t, r, "alice@x.test/pc")
			got := map[string]*routertest.Session{}
			for _, rs := range tc.resources {
				s := routertest.Bind(t, r, "bob@x.test/"+rs.name)
				if rs.available {
					p := xmlstream.New(xmlstream.NSClient, "presence")
					r.SetPresence(s.JID(), p, rs.priority)
				}
				got[rs.name] = s
			}
			r.RouteFromClient(context.Background(), msg("alice@x.test/pc", tc.to, tc.typ, "hi"))
			for _, rs := range tc.resources {
				n := len(got[rs.name].Take())
				want := 0
				for _, w := range tc.wantGot {
					if w == rs.name {
						want = 1
					}
				}
				if n != want {
					t.Errorf("resource %s got %d messages, want %d", rs.name, n, want)
				}
			}
			if stored := len(off.stored) > 0; stored != tc.wantOffline {
				t.Errorf("stored offline: %v, want %v", stored, tc.wantOffline)
			}
			replies := alice.Take()
			cond := ""
			if len(replies) == 1 {
				if e := replies[0].Child("", "error"); e != nil && e.First() != nil {
					cond = e.First().Name.Local
				}
			}
			if cond != tc.wantError || len(replies) > 1 {
				t.Errorf("sender got %d replies, error %q; want %q", len(replies), cond, tc.wantError)
			}
		})
	}
}

// TestIQRouting checks iq addressing: handlers for the domain and bare
// JIDs, sessions for full JIDs, errors otherwise.
func TestIQRouting(t *testing.T) {
	r := routertest.NewRouter(router.Config{
		Domain:   jid.MustParse("x.test"),
		Accounts: routertest.Accounts{"alice": true, "bob": true},
	})
	r.HandleIQ("urn:test", "q", router.IQHandlerFunc(func(_ context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
		return xmlstream.New("urn:test", "q", "to", iq.Get("to")), nil
	}))
	alice := routertest.Bind(t, r, "alice@x.test/pc")
	bob := routertest.Bind(t, r, "bob@x.test/phone")
	iq := func(to, typ string, payload ...*xmlstream.Element) *xmlstream.Element {
		return xmlstream.New(xmlstream.NSClient, "iq", "to", to, "type", typ, "id", "1").Append(payload...)
	}
	q := func() *xmlstream.Element { return xmlstream.New("urn:test", "q") }
	tests := []struct {
		name       string
		st         *xmlstream.Element
		wantType   string // of the reply to alice
		wantCond   string
		wantAtBob  bool
		wantHandTo string // the to the handler saw
	}{
		{"to domain", iq("x.test", "get", q()), "result", "", false, "x.test"},
		{"no to means own account", iq("", "get", q()), "result", "", false, "alice@x.test"},
		{"to other account's bare jid", iq("bob@x.test", "get", q()), "result", "", false, "bob@x.test"},
		{"to unknown account", iq("nobody@x.test", "get", q()), "error", "service-unavailable", false, ""},
		{"unknown payload", iq("x.test", "get", xmlstream.New("urn:other", "q")), "error", "service-unavailable", false, ""},
		{"two payloads", iq("x.test", "get", q(), q()), "error", "bad-request", false, ""},
		{"bad type", iq("x.test", "fetch", q()), "error", "bad-request", false, ""},
		{"full jid delivered", iq("bob@x.test/phone", "get", q()), "", "", true, ""},
		{"full jid missing", iq("bob@x.test/tablet", "get", q()), "error", "service-unavailable", false, ""},
		{"result to the server is dropped", iq("x.test", "result"), "", "", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.st.SetAttr("from", "alice@x.test/pc")
			r.RouteFromClient(context.Background(), tc.st)
			replies := alice.Take()
			atBob := len(bob.Take()) > 0
			if atBob != tc.wantAtBob {
				t.Errorf("bob got it: %v, want %v", atBob, tc.wantAtBob)
			}
			if tc.wantType == "" {
				if len(replies) != 0 {
					t.Fatalf("unexpected reply %s", replies[0])
				}
				return
			}
			if len(replies) != 1 {
				t.Fatalf("%d replies", len(replies))
			}
			rep := replies[0]
			if rep.Get("type") != tc.wantType || rep.Get("id") != "1" {
				t.Fatalf("reply %s", rep)
			}
			if tc.wantCond != "" {
				if c := rep.Child("", "error").First(); c == nil || c.Name.Local != tc.wantCond {
					t.Fatalf("reply %s, want %s", rep, tc.wantCond)
				}
			}
			if tc.wantHandTo != "" {
				if got := rep.Child("urn:test", "q").Get("to"); got != tc.wantHandTo {
					t.Errorf("handler saw to=%q, want %q", got, tc.wantHandTo)
				}
			}
		})
	}
}
