package register

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/sasl"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/storage/sqlite"
	"casp3r/internal/xmlstream"
)

var _ Store = (*sqlite.DB)(nil)

const iters = 1 // fast key derivation for tests

var domain = jid.MustParse("example.org")

func openDB(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func createAccount(t *testing.T, db *sqlite.DB, user, password string) {
	t.Helper()
	c, err := sasl.NewCredentials(password, iters)
	if err != nil {
		t.Fatal(err)
	}
	sc := storage.Credentials{SHA1: storage.ScramKeys(c.SHA1), SHA256: storage.ScramKeys(c.SHA256)}
	if err := db.CreateAccount(context.Background(), user, sc); err != nil {
		t.Fatal(err)
	}
}

// checkPassword reports whether user's stored credentials match password.
func checkPassword(t *testing.T, db *sqlite.DB, user, password string) bool {
	t.Helper()
	c, err := db.Credentials(context.Background(), user)
	if err != nil {
		t.Fatalf("credentials of %s: %v", user, err)
	}
	return sasl.Credentials{SHA1: sasl.ScramKeys(c.SHA1), SHA256: sasl.ScramKeys(c.SHA256)}.VerifyPlain(password)
}

func exists(t *testing.T, db *sqlite.DB, user string) bool {
	t.Helper()
	ok, err := db.AccountExists(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// regIQ builds an iq with a registration query holding children, given as
// name, text pairs (text "-" for an empty element).
func regIQ(typ string, children ...string) *xmlstream.Element {
	q := xmlstream.New(NS, "query")
	for i := 0; i+1 < len(children); i += 2 {
		c := xmlstream.New(NS, children[i])
		if children[i+1] != "-" {
			c.SetText(children[i+1])
		}
		q.Append(c)
	}
	return xmlstream.New(xmlstream.NSClient, "iq", "type", typ, "id", "r1").Append(q)
}

func condition(err error) string {
	var se *stanza.Error
	if errors.As(err, &se) {
		return se.Condition
	}
	if err != nil {
		return "go error: " + err.Error()
	}
	return ""
}

func TestPreAuthForm(t *testing.T) {
	m := New(domain, openDB(t), iters, true)
	q, err := m.HandlePreAuth(context.Background(), regIQ("get"))
	if err != nil {
		t.Fatal(err)
	}
	if !q.Is(NS, "query") {
		t.Fatalf("payload = %s", q)
	}
	var names []string
	for _, c := range q.Children() {
		names = append(names, c.Name.Local)
	}
	if want := []string{"instructions", "username", "password"}; !slices.Equal(names, want) {
		t.Errorf("children = %q, want %q", names, want)
	}
	if q.Child(NS, "instructions").Text() == "" {
		t.Error("no instructions text")
	}
}

func TestPreAuth(t *testing.T) {
	tests := []struct {
		name string
		open bool
		iq   *xmlstream.Element
		cond string // "" for success
		user string // account expected to exist afterwards, with password pass
		pass string
	}{
		{"register", true, regIQ("set", "username", "carol", "password", "s3cret"), "", "carol", "s3cret"},
		{"username prepared", true, regIQ("set", "username", "Dave", "password", "pw"), "", "dave", "pw"},
		{"unicode password", true, regIQ("set", "username", "erin", "password", "pâss 🔑"), "", "erin", "pâss 🔑"},
		{"closed get", false, regIQ("get"), "not-allowed", "", ""},
		{"closed set", false, regIQ("set", "username", "carol", "password", "pw"), "not-allowed", "", ""},
		{"taken", true, regIQ("set", "username", "alice", "password", "pw"), "conflict", "alice", "old"},
		{"taken other case", true, regIQ("set", "username", "ALICE", "password", "pw"), "conflict", "alice", "old"},
		{"no username", true, regIQ("set", "password", "pw"), "not-acceptable", "", ""},
		{"no password", true, regIQ("set", "username", "carol"), "not-acceptable", "", ""},
		{"empty username", true, regIQ("set", "username", "-", "password", "pw"), "not-acceptable", "", ""},
		{"bad username", true, regIQ("set", "username", "a/b", "password", "pw"), "not-acceptable", "", ""},
		{"username with space", true, regIQ("set", "username", "a b", "password", "pw"), "not-acceptable", "", ""},
		{"empty password", true, regIQ("set", "username", "carol", "password", "-"), "not-acceptable", "", ""},
		{"bad password", true, regIQ("set", "username", "carol", "password", "a\u0007b"), "not-acceptable", "", ""},
		{"remove", true, regIQ("set", "remove", "-"), "not-authorized", "", ""},
		{"result type", true, regIQ("result"), "bad-request", "", ""},
		{"other payload", true, xmlstream.New(xmlstream.NSClient, "iq", "type", "get").
			Append(xmlstream.New("urn:xmpp:ping", "ping")), "service-unavailable", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t)
			createAccount(t, db, "alice", "old")
			m := New(domain, db, iters, tt.open)
			payload, err := m.HandlePreAuth(context.Background(), tt.iq)
			if got := condition(err); got != tt.cond {
				t.Fatalf("error = %q, want %q", got, tt.cond)
			}
			if err == nil && tt.iq.Get("type") == "set" && payload != nil {
				t.Errorf("payload = %s, want an empty result", payload)
			}
			if tt.user != "" && !checkPassword(t, db, tt.user, tt.pass) {
				t.Errorf("password of %s is not %q", tt.user, tt.pass)
			}
			if tt.cond != "" && exists(t, db, "carol") {
				t.Error("account created despite the error")
			}
		})
	}
}

// fakeStore is a Store of func fields, for the failures sqlite does not
// produce on demand.
type fakeStore struct {
	create func(ctx context.Context, user string, c storage.Credentials) error
	exists func(ctx context.Context, user string) (bool, error)
}

func (f fakeStore) CreateAccount(ctx context.Context, user string, c storage.Credentials) error {
	return f.create(ctx, user, c)
}
func (f fakeStore) DeleteAccount(context.Context, string) error { return errors.New("disk on fire") }
func (f fakeStore) SetCredentials(context.Context, string, storage.Credentials) error {
	return errors.New("disk on fire")
}
func (f fakeStore) AccountExists(ctx context.Context, user string) (bool, error) {
	return f.exists(ctx, user)
}

func TestPreAuthStoreErrors(t *testing.T) {
	fail := errors.New("disk on fire")
	no := func(context.Context, string) (bool, error) { return false, nil }
	tests := []struct {
		name string
		st   fakeStore
		cond string
	}{
		{"created meanwhile", fakeStore{exists: no,
			create: func(context.Context, string, storage.Credentials) error {
				return fmt.Errorf("create account: %w", storage.ErrExists)
			}}, "conflict"},
		{"create fails", fakeStore{exists: no,
			create: func(context.Context, string, storage.Credentials) error { return fail }}, "go error: register: disk on fire"},
		{"lookup fails", fakeStore{exists: func(context.Context, string) (bool, error) { return false, fail }},
			"go error: register: disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(domain, tt.st, iters, true)
			_, err := m.HandlePreAuth(context.Background(), regIQ("set", "username", "carol", "password", "pw"))
			if got := condition(err); got != tt.cond {
				t.Errorf("error = %q, want %q", got, tt.cond)
			}
		})
	}
	m := New(domain, fakeStore{}, iters, true)
	for _, iq := range []*xmlstream.Element{
		regIQ("set", "username", "carol", "password", "pw").SetAttr("from", "carol@example.org/x"),
		regIQ("set", "remove", "-").SetAttr("from", "carol@example.org/x"),
	} {
		iq.SetAttr("to", "example.org")
		_, err := m.HandleIQ(context.Background(), iq)
		if err == nil || errors.As(err, new(*stanza.Error)) || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("err = %v, want the store's error wrapped", err)
		}
	}
}

func TestAuthenticated(t *testing.T) {
	tests := []struct {
		name    string
		to      string
		iq      *xmlstream.Element
		cond    string // "" for a result
		check   func(t *testing.T, db *sqlite.DB, reply *xmlstream.Element)
		removed []string // OnRemove calls expected
	}{
		{name: "get", to: "example.org", iq: regIQ("get"), check: registered},
		{name: "get own bare JID", to: "alice@example.org", iq: regIQ("get"), check: registered},
		{name: "get other account", to: "bob@example.org", iq: regIQ("get"), cond: "service-unavailable"},
		{name: "change password", to: "example.org", iq: regIQ("set", "username", "alice", "password", "new"),
			check: func(t *testing.T, db *sqlite.DB, _ *xmlstream.Element) {
				if !checkPassword(t, db, "alice", "new") {
					t.Error("password not changed")
				}
				if !checkPassword(t, db, "bob", "bobpw") {
					t.Error("bob's password changed")
				}
			}},
		{name: "change password username prepared", to: "alice@example.org",
			iq: regIQ("set", "username", "Alice", "password", "new"),
			check: func(t *testing.T, db *sqlite.DB, _ *xmlstream.Element) {
				if !checkPassword(t, db, "alice", "new") {
					t.Error("password not changed")
				}
			}},
		{name: "change other's password", to: "example.org", iq: regIQ("set", "username", "bob", "password", "new"),
			cond: "not-allowed"},
		{name: "change password bad username", to: "example.org", iq: regIQ("set", "username", "a/b", "password", "new"),
			cond: "not-allowed"},
		{name: "change password no password", to: "example.org", iq: regIQ("set", "username", "alice"),
			cond: "bad-request"},
		{name: "change password no username", to: "example.org", iq: regIQ("set", "password", "new"),
			cond: "bad-request"},
		{name: "change password empty", to: "example.org", iq: regIQ("set", "username", "alice", "password", "-"),
			cond: "not-acceptable"},
		{name: "change password bad", to: "example.org", iq: regIQ("set", "username", "alice", "password", "\u0000"),
			cond: "not-acceptable"},
		{name: "set nothing", to: "example.org", iq: regIQ("set"), cond: "bad-request"},
		{name: "remove", to: "example.org", iq: regIQ("set", "remove", "-"), removed: []string{"alice"},
			check: func(t *testing.T, db *sqlite.DB, _ *xmlstream.Element) {
				if exists(t, db, "alice") {
					t.Error("alice still exists")
				}
				if !exists(t, db, "bob") {
					t.Error("bob removed")
				}
			}},
		{name: "remove other", to: "bob@example.org", iq: regIQ("set", "remove", "-"), cond: "service-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t)
			createAccount(t, db, "alice", "old")
			createAccount(t, db, "bob", "bobpw")
			r := routertest.NewRouter(router.Config{Domain: domain, Accounts: db})
			m := New(domain, db, iters, false) // closed: changes still work
			var removed []string
			m.OnRemove = func(_ context.Context, user string) { removed = append(removed, user) }
			m.Register(r)
			s := routertest.Bind(t, r, "alice@example.org/phone")
			tt.iq.SetAttr("to", tt.to)
			reply := routertest.Ask(t, r, s, tt.iq)
			if tt.cond != "" {
				if e := stanza.ParseError(reply); reply.Get("type") != "error" || e == nil || e.Condition != tt.cond {
					t.Errorf("reply = %s, want error %s", reply, tt.cond)
				}
				if !checkPassword(t, db, "alice", "old") {
					t.Error("password changed despite the error")
				}
			} else if reply.Get("type") != "result" {
				t.Errorf("reply = %s, want a result", reply)
			}
			if tt.check != nil {
				tt.check(t, db, reply)
			}
			if !slices.Equal(removed, tt.removed) {
				t.Errorf("OnRemove calls = %q, want %q", removed, tt.removed)
			}
		})
	}
}

func registered(t *testing.T, _ *sqlite.DB, reply *xmlstream.Element) {
	t.Helper()
	q := reply.Child(NS, "query")
	if q == nil || q.Child(NS, "registered") == nil {
		t.Fatalf("reply = %s, want <registered/>", reply)
	}
	if got, want := q.Child(NS, "username").Text(), "alice"; got != want {
		t.Errorf("username = %q, want %q", got, want)
	}
	if q.Child(NS, "password") != nil {
		t.Error("password element in the reply")
	}
}

// TestAccountGone covers a session whose account was deleted meanwhile.
func TestAccountGone(t *testing.T) {
	db := openDB(t)
	m := New(domain, db, iters, true)
	called := false
	m.OnRemove = func(context.Context, string) { called = true }
	for _, iq := range []*xmlstream.Element{
		regIQ("set", "remove", "-"),
		regIQ("set", "username", "alice", "password", "new"),
	} {
		iq.SetAttr("from", "alice@example.org/phone")
		iq.SetAttr("to", "example.org")
		if _, err := m.HandleIQ(context.Background(), iq); !errors.Is(err, stanza.ItemNotFound) {
			t.Errorf("err = %v, want item-not-found", err)
		}
	}
	if called {
		t.Error("OnRemove called for a missing account")
	}
}
