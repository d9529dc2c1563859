package vcard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/xmlstream"
)

// memStore is an in-memory Store of the accounts in its map; err, when set,
// fails every call.
type memStore struct {
	mu     sync.Mutex
	vcards map[string][]byte // account -> vCard; nil value: account without one
	err    error
}

func newMemStore(users ...string) *memStore {
	s := &memStore{vcards: make(map[string][]byte)}
	for _, u := range users {
		s.vcards[u] = nil
	}
	return s
}

func (s *memStore) SetVCard(_ context.Context, user string, xml []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if _, ok := s.vcards[user]; !ok {
		return storage.ErrNotFound
	}
	s.vcards[user] = append([]byte(nil), xml...)
	return nil
}

func (s *memStore) VCard(_ context.Context, user string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.vcards[user] == nil {
		return nil, storage.ErrNotFound
	}
	return s.vcards[user], nil
}

// parse parses an element written in XML, failing the test if it does not.
func parse(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	el, err := xmlstream.ParseFrame([]byte(s), xmlstream.Limits{})
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return el
}

const (
	aliceCard = `<vCard xmlns='vcard-temp'><FN>Alice &amp; co &lt;3</FN><N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN></N>` +
		`<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO><x xmlns='urn:example:ext' a='1'/></vCard>`
	bobCard = `<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>`
)

func TestVCard(t *testing.T) {
	const max = 1024
	big := `<vCard xmlns='vcard-temp'><DESC>` + strings.Repeat("x", max) + `</DESC></vCard>`
	// exact is a vCard of exactly max bytes when serialised.
	exact := `<vCard xmlns='vcard-temp'><DESC>` + strings.Repeat("y", max-len(`<vCard xmlns='vcard-temp'><DESC></DESC></vCard>`)) + `</DESC></vCard>`
	type step struct {
		name    string
		typ     string
		to      string
		payload string // the vCard sent
		cond    string // stanza error expected; "" for a result
		want    string // vCard expected in the result of a get
	}
	steps := []step{
		{"own, none yet", "get", "alice@example.org", `<vCard xmlns='vcard-temp'/>`, "", `<vCard xmlns='vcard-temp'/>`},
		{"set own", "set", "alice@example.org", aliceCard, "", ""},
		{"get own", "get", "alice@example.org", `<vCard xmlns='vcard-temp'/>`, "", aliceCard},
		{"get own, no to", "get", "", `<vCard xmlns='vcard-temp'/>`, "", aliceCard},
		{"set own, no to", "set", "", bobCard, "", ""},
		{"get own after set with no to", "get", "", `<vCard xmlns='vcard-temp'/>`, "", bobCard},
		{"set own again", "set", "alice@example.org", aliceCard, "", ""},
		{"other account's", "get", "bob@example.org", `<vCard xmlns='vcard-temp'/>`, "", bobCard},
		{"other account without one", "get", "carol@example.org", `<vCard xmlns='vcard-temp'/>`, "", `<vCard xmlns='vcard-temp'/>`},
		{"unknown account", "get", "nobody@example.org", `<vCard xmlns='vcard-temp'/>`, "service-unavailable", ""},
		{"server's", "get", "example.org", `<vCard xmlns='vcard-temp'/>`, "", `<vCard xmlns='vcard-temp'/>`},
		{"set another account's", "set", "bob@example.org", aliceCard, "forbidden", ""},
		{"set the server's", "set", "example.org", aliceCard, "forbidden", ""},
		{"bob untouched", "get", "bob@example.org", `<vCard xmlns='vcard-temp'/>`, "", bobCard},
		{"too large", "set", "alice@example.org", big, "policy-violation", ""},
		{"unchanged after too large", "get", "alice@example.org", `<vCard xmlns='vcard-temp'/>`, "", aliceCard},
		{"exactly the limit", "set", "alice@example.org", exact, "", ""},
		{"get the limit", "get", "alice@example.org", `<vCard xmlns='vcard-temp'/>`, "", exact},
		{"clear", "set", "alice@example.org", `<vCard xmlns='vcard-temp'/>`, "", ""},
		{"cleared", "get", "alice@example.org", `<vCard xmlns='vcard-temp'/>`, "", `<vCard xmlns='vcard-temp'/>`},
	}
	st := newMemStore("alice", "bob", "carol")
	st.vcards["bob"] = []byte(bobCard)
	r := routertest.NewRouter(router.Config{
		Domain:   jid.MustParse("example.org"),
		Accounts: routertest.Accounts{"alice": true, "bob": true, "carol": true},
	})
	New(st, max).Register(r)
	s := routertest.Bind(t, r, "alice@example.org/phone")
	for i, tt := range steps {
		id := fmt.Sprintf("v%d", i)
		iq := xmlstream.New(xmlstream.NSClient, "iq", "type", tt.typ, "id", id, "to", tt.to).
			Append(parse(t, tt.payload))
		reply := routertest.Ask(t, r, s, iq)
		if got := reply.Get("id"); got != id {
			t.Errorf("%s: id = %q, want %q", tt.name, got, id)
		}
		if tt.cond != "" {
			if e := stanza.ParseError(reply); reply.Get("type") != "error" || e == nil || e.Condition != tt.cond {
				t.Errorf("%s: reply = %s, want error %s", tt.name, reply, tt.cond)
			}
			continue
		}
		if reply.Get("type") != "result" {
			t.Errorf("%s: reply = %s, want a result", tt.name, reply)
			continue
		}
		if tt.typ == "set" {
			if len(reply.Nodes) != 0 {
				t.Errorf("%s: reply = %s, want an empty result", tt.name, reply)
			}
			continue
		}
		v := reply.Child(NS, "vCard")
		if v == nil || len(reply.Children()) != 1 {
			t.Errorf("%s: reply = %s, want one vCard", tt.name, reply)
			continue
		}
		if got, want := string(xmlstream.AppendXML(nil, v, "")), string(xmlstream.AppendXML(nil, parse(t, tt.want), "")); got != want {
			t.Errorf("%s: vCard = %s\nwant %s", tt.name, got, want)
		}
	}
	// The store holds the serialised element.
	if got, want := string(st.vcards["alice"]), `<vCard xmlns='vcard-temp'/>`; got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
}

// TestHandleIQ covers what a client session cannot send: iqs from other
// domains (over s2s), store failures and odd addresses.
func TestHandleIQ(t *testing.T) {
	tests := []struct {
		name     string
		typ      string
		from, to string
		storeErr error
		cond     string // "" for a result
	}{
		{"remote reads", "get", "eve@remote.example/x", "alice@example.org", nil, ""},
		{"remote cannot set", "set", "eve@remote.example/x", "alice@example.org", nil, "forbidden"},
		{"remote impersonating the domain cannot set", "set", "example.org", "alice@example.org", nil, "forbidden"},
		{"store fails on get", "get", "alice@example.org/a", "alice@example.org", errors.New("disk"), "internal-server-error"},
		{"store fails on set", "set", "alice@example.org/a", "alice@example.org", errors.New("disk"), "internal-server-error"},
		{"account gone on set", "set", "dave@example.org/a", "dave@example.org", nil, "item-not-found"},
		{"bad from", "get", "@@", "alice@example.org", nil, "jid-malformed"},
		{"bad to", "get", "alice@example.org/a", "@@", nil, "jid-malformed"},
		{"odd type", "result", "alice@example.org/a", "alice@example.org", nil, "bad-request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemStore("alice")
			st.err = tt.storeErr
			m := New(st, 0)
			iq := xmlstream.New(xmlstream.NSClient, "iq", "type", tt.typ, "id", "1", "from", tt.from, "to", tt.to).
				Append(parse(t, bobCard))
			res, err := m.HandleIQ(context.Background(), iq)
			if tt.cond == "" {
				if err != nil {
					t.Fatalf("HandleIQ: %v", err)
				}
				if tt.typ == "get" && !res.Is(NS, "vCard") {
					t.Errorf("result = %s, want a vCard", res)
				}
				return
			}
			if got := stanza.StanzaError(err).Condition; got != tt.cond {
				t.Errorf("HandleIQ = %v, %v; want %s", res, err, tt.cond)
			}
		})
	}
}

// TestCorruptStore checks that a stored vCard that does not parse is an
// internal error, not a crash or a wrong answer.
func TestCorruptStore(t *testing.T) {
	for _, data := range []string{"<vCard xmlns='vcard-temp'>", "<other xmlns='x'/>", "not xml"} {
		st := newMemStore("alice")
		st.vcards["alice"] = []byte(data)
		iq := xmlstream.New(xmlstream.NSClient, "iq", "type", "get", "id", "1", "from", "alice@example.org/a", "to", "alice@example.org").
			Append(empty())
		_, err := New(st, 0).HandleIQ(context.Background(), iq)
		if got := stanza.StanzaError(err); got != stanza.InternalServerError {
			t.Errorf("%q: error %v, want internal-server-error", data, err)
		}
	}
}

func TestDefaultMax(t *testing.T) {
	for _, max := range []int{0, -1} {
		if got := New(newMemStore(), max).max; got != DefaultMax {
			t.Errorf("New(max %d).max = %d, want %d", max, got, DefaultMax)
		}
	}
}
