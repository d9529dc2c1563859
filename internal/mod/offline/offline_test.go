package offline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/storage/sqlite"
	"casp3r/internal/xmlstream"
)

var _ Store = (*sqlite.DB)(nil)

var (
	domain = jid.MustParse("example.org")
	stamp  = time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.FixedZone("CEST", 2*3600))
)

const wantStamp = "2024-05-06T05:08:09.123Z"

// logBuffer collects log output safely.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	db  *sqlite.DB
	r   *router.Router
	m   *Module
	log *logBuffer
}

// newEnv returns a router for example.org with accounts alice and bob, and
// the module (max messages per account) wired as its offline store.
func newEnv(t *testing.T, max int) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "test.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, u := range []string{"alice", "bob"} {
		if err := db.CreateAccount(ctx, u, storage.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{db: db, log: &logBuffer{}}
	e.r = routertest.NewRouter(router.Config{Domain: domain, Accounts: db})
	e.m = New(e.r, db, max)
	e.m.now = func() time.Time { return stamp }
	e.m.Logger = slog.New(slog.NewTextHandler(e.log, nil))
	e.r.SetOfflineStore(e.m)
	return e
}

// bind binds full and marks it available with priority.
func (e *env) bind(t *testing.T, full string, priority int) (*routertest.Session, router.Resource) {
	t.Helper()
	s := routertest.Bind(t, e.r, full)
	j := s.JID()
	e.r.SetPresence(j, xmlstream.New(xmlstream.NSClient, "presence"), priority)
	res, ok := e.r.Lookup(j)
	if !ok {
		t.Fatal("bound resource not found")
	}
	return s, res
}

func (e *env) stored(t *testing.T, user string) []storage.OfflineMessage {
	t.Helper()
	msgs, err := e.db.OfflineMessages(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func message(body string) *xmlstream.Element {
	return xmlstream.New(xmlstream.NSClient, "message", "from", "alice@example.org/phone",
		"to", "bob@example.org", "type", "chat", "id", body).
		Append(xmlstream.New(xmlstream.NSClient, "body").SetText(body))
}

func TestStoreOffline(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		msg  *xmlstream.Element
		want string
	}{
		{"delay added", message("hi"),
			`<message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org' type='chat' id='hi'>` +
				`<body>hi</body><delay xmlns='urn:xmpp:delay' from='example.org' stamp='` + wantStamp + `'/></message>`},
		{"delay kept", message("old").Append(xmlstream.New(NSDelay, "delay", "stamp", "2001-01-01T00:00:00Z")),
			`<message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org' type='chat' id='old'>` +
				`<body>old</body><delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z'/></message>`},
		{"from a server stream", xmlstream.New(xmlstream.NSServer, "message", "from", "x@remote.example", "to", "bob@example.org").
			Append(xmlstream.New(xmlstream.NSServer, "body").SetText("s2s")),
			`<message xmlns='jabber:server' from='x@remote.example' to='bob@example.org'><body>s2s</body>` +
				`<delay xmlns='urn:xmpp:delay' from='example.org' stamp='` + wantStamp + `'/></message>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0)
			before := tt.msg.String()
			if err := e.m.StoreOffline(ctx, "bob", tt.msg); err != nil {
				t.Fatal(err)
			}
			if got := tt.msg.String(); got != before {
				t.Errorf("stanza changed:\n got %s\nwant %s", got, before)
			}
			msgs := e.stored(t, "bob")
			if len(msgs) != 1 {
				t.Fatalf("%d messages stored, want 1", len(msgs))
			}
			if got := string(msgs[0].Stanza); got != tt.want {
				t.Errorf("stored\n %s\nwant %s", got, tt.want)
			}
			// Parsing gives back the same element.
			el, err := xmlstream.ParseFrame(msgs[0].Stanza, xmlstream.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(xmlstream.AppendXML(nil, el, "")); got != tt.want {
				t.Errorf("round trip\n %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestStoreOfflineErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 2)
	for i := range 2 {
		if err := e.m.StoreOffline(ctx, "bob", message(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	err := e.m.StoreOffline(ctx, "bob", message("too many"))
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != "service-unavailable" || se.Text == "" {
		t.Errorf("over quota: err = %v, want service-unavailable with text", err)
	}
	if got, want := len(e.stored(t, "bob")), 2; got != want {
		t.Errorf("%d messages stored, want %d", got, want)
	}
	if err := e.m.StoreOffline(ctx, "alice", message("other account")); err != nil {
		t.Errorf("quota is per account: %v", err)
	}
	if err := e.m.StoreOffline(ctx, "nobody", message("x")); !errors.Is(err, stanza.ServiceUnavailable) {
		t.Errorf("missing account: err = %v, want service-unavailable", err)
	}
	fail := errors.New("disk on fire")
	m := New(e.r, &fakeStore{store: fail}, 0)
	err = m.StoreOffline(ctx, "bob", message("x"))
	if !errors.Is(err, fail) || errors.As(err, &se) {
		t.Errorf("store failure: err = %v, want it wrapped, not a stanza error", err)
	}
}

// TestRouteAndDeliver sends messages through the router to an offline
// account, then brings a resource online.
func TestRouteAndDeliver(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 0)
	alice, _ := e.bind(t, "alice@example.org/phone", 0)
	for _, body := range []string{"one", "two", "three"} {
		e.r.RouteFromClient(ctx, message(body))
	}
	if got := alice.Take(); len(got) != 0 {
		t.Fatalf("sender got %d stanzas (errors?): %v", len(got), got[0])
	}
	if got, want := len(e.stored(t, "bob")), 3; got != want {
		t.Fatalf("%d messages stored, want %d", got, want)
	}

	bob, res := e.bind(t, "bob@example.org/laptop", 1)
	e.m.InitialPresence(ctx, res)
	got := bob.Take()
	var bodies []string
	for _, m := range got {
		if !m.Is(xmlstream.NSClient, "message") {
			t.Errorf("delivered %s", m)
		}
		bodies = append(bodies, m.Child(xmlstream.NSClient, "body").Text())
		d := m.Child(NSDelay, "delay")
		if d == nil || d.Get("from") != "example.org" || d.Get("stamp") != wantStamp {
			t.Errorf("delay of %s", m)
		}
	}
	if got, want := strings.Join(bodies, ","), "one,two,three"; got != want {
		t.Errorf("delivered %q, want %q", got, want)
	}
	if n := len(e.stored(t, "bob")); n != 0 {
		t.Errorf("%d messages left after delivery", n)
	}
	// A second resource gets nothing more.
	bob2, res2 := e.bind(t, "bob@example.org/phone", 1)
	e.m.InitialPresence(ctx, res2)
	if n := len(bob2.Take()); n != 0 {
		t.Errorf("second resource got %d messages", n)
	}
}

func TestInitialPresence(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		priority int
		garbage  bool   // store an unparsable message between the others
		want     string // bodies delivered
		left     int    // messages left in storage
		logged   string
	}{
		{name: "delivered", priority: 0, want: "a,b"},
		{name: "negative priority", priority: -1, want: "", left: 2},
		{name: "unparsable skipped", priority: 5, garbage: true, want: "a,b", logged: "drop unparsable offline message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0)
			if err := e.m.StoreOffline(ctx, "bob", message("a")); err != nil {
				t.Fatal(err)
			}
			if tt.garbage {
				if err := e.db.StoreOffline(ctx, "bob", []byte("<message><unclosed></message>"), 0); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.m.StoreOffline(ctx, "bob", message("b")); err != nil {
				t.Fatal(err)
			}
			bob, res := e.bind(t, "bob@example.org/laptop", tt.priority)
			e.m.InitialPresence(ctx, res)
			var bodies []string
			for _, m := range bob.Take() {
				bodies = append(bodies, m.Child(xmlstream.NSClient, "body").Text())
			}
			if got := strings.Join(bodies, ","); got != tt.want {
				t.Errorf("delivered %q, want %q", got, tt.want)
			}
			if got := len(e.stored(t, "bob")); got != tt.left {
				t.Errorf("%d messages left, want %d", got, tt.left)
			}
			if log := e.log.String(); !strings.Contains(log, tt.logged) || tt.logged == "" && log != "" {
				t.Errorf("log = %q, want %q", log, tt.logged)
			}
		})
	}
}

// fakeStore is a Store with injectable failures and an optional gate that
// holds OfflineMessages until closed.
type fakeStore struct {
	store, load, del error
	msgs             []storage.OfflineMessage
	entered          chan struct{} // receives when OfflineMessages is entered
	gate             chan struct{} // OfflineMessages waits for it when not nil

	mu      sync.Mutex
	loads   int
	deleted []int64
}

func (f *fakeStore) StoreOffline(context.Context, string, []byte, int) error { return f.store }

func (f *fakeStore) OfflineMessages(context.Context, string) ([]storage.OfflineMessage, error) {
	f.mu.Lock()
	f.loads++
	f.mu.Unlock()
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	return f.msgs, f.load
}

func (f *fakeStore) DeleteOffline(_ context.Context, _ string, ids ...int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, ids...)
	return f.del
}

func stored(bodies ...string) []storage.OfflineMessage {
	var out []storage.OfflineMessage
	for i, b := range bodies {
		out = append(out, storage.OfflineMessage{ID: int64(10 + i), Stanza: []byte(message(b).String())})
	}
	return out
}

func TestInitialPresenceStoreErrors(t *testing.T) {
	ctx := context.Background()
	fail := errors.New("disk on fire")
	tests := []struct {
		name    string
		st      *fakeStore
		want    string
		deleted []int64
		logged  string
	}{
		{"load fails", &fakeStore{load: fail, msgs: stored("a")}, "", nil, "load offline messages"},
		{"delete fails", &fakeStore{del: fail, msgs: stored("a", "b")}, "a,b", []int64{10, 11}, "delete offline messages"},
		{"nothing stored", &fakeStore{}, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0)
			m := New(e.r, tt.st, 0)
			m.Logger = e.m.Logger
			bob, res := e.bind(t, "bob@example.org/laptop", 0)
			m.InitialPresence(ctx, res)
			var bodies []string
			for _, el := range bob.Take() {
				bodies = append(bodies, el.Child(xmlstream.NSClient, "body").Text())
			}
			if got := strings.Join(bodies, ","); got != tt.want {
				t.Errorf("delivered %q, want %q", got, tt.want)
			}
			if got := fmt.Sprint(tt.st.deleted); got != fmt.Sprint(tt.deleted) {
				t.Errorf("deleted %s, want %v", got, tt.deleted)
			}
			if log := e.log.String(); !strings.Contains(log, tt.logged) || tt.logged == "" && log != "" {
				t.Errorf("log = %q, want %q", log, tt.logged)
			}
		})
	}
}

// TestInitialPresenceOnce checks that two resources coming online together
// do not both get the messages.
func TestInitialPresenceOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 0)
	st := &fakeStore{msgs: stored("a", "b"), entered: make(chan struct{}), gate: make(chan struct{})}
	m := New(e.r, st, 0)
	s1, res1 := e.bind(t, "bob@example.org/one", 0)
	s2, res2 := e.bind(t, "bob@example.org/two", 0)
	done := make(chan struct{})
	go func() {
		m.InitialPresence(ctx, res1)
		close(done)
	}()
	<-st.entered // the first delivery is loading
	st.entered = nil
	m.InitialPresence(ctx, res2) // returns at once: delivery in progress
	close(st.gate)
	<-done
	if got, want := len(s1.Take()), 2; got != want {
		t.Errorf("first resource got %d, want %d", got, want)
	}
	if got := len(s2.Take()); got != 0 {
		t.Errorf("second resource got %d, want 0", got)
	}
	if st.loads != 1 {
		t.Errorf("loaded %d times, want 1", st.loads)
	}
	// Once the first delivery is over, another may start.
	m.InitialPresence(ctx, res2)
	if st.loads != 2 {
		t.Errorf("loaded %d times, want 2", st.loads)
	}
}

// TestRedeliver checks the delivery of messages stored while the user was
// online elsewhere in a cluster: they go to the resource a message to the
// bare JID would go to, only from the node that holds it.
func TestRedeliver(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		local  []int // priorities of bob's resources here, named l0, l1, …
		remote []int // priorities of his resources on node "b", named r0, …
		want   string
	}{
		{"one available resource here", []int{0}, nil, "l0"},
		{"best of two here", []int{1, 5}, nil, "l1"},
		{"equal priorities: first full JID", []int{3, 3}, nil, "l0"},
		{"best resource on another node", []int{0}, []int{5}, ""},
		{"better here than there", []int{7}, []int{5}, "l0"},
		{"only a negative priority", []int{-1}, nil, ""},
		{"no resource", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 0)
			sessions := map[string]*routertest.Session{}
			for i, p := range tt.local {
				name := fmt.Sprintf("l%d", i)
				sessions[name], _ = e.bind(t, "bob@example.org/"+name, p)
			}
			for i, p := range tt.remote {
				full := jid.MustParse(fmt.Sprintf("bob@example.org/r%d", i))
				e.r.PutRemote(router.Resource{Session: routertest.NewSession(full), JID: full, Available: true, Priority: p, Node: "b"})
			}
			for _, body := range []string{"one", "two"} {
				if err := e.m.StoreOffline(ctx, "bob", message(body)); err != nil {
					t.Fatal(err)
				}
			}
			e.m.Redeliver(ctx, "bob")
			got := ""
			for name, s := range sessions {
				if n := len(s.Take()); n > 0 {
					if got != "" || n != 2 {
						t.Errorf("%s got %d messages (after %q)", name, n, got)
					}
					got = name
				}
			}
			if got != tt.want {
				t.Errorf("delivered to %q, want %q", got, tt.want)
			}
			left := len(e.stored(t, "bob"))
			if want := map[bool]int{true: 2, false: 0}[tt.want == ""]; left != want {
				t.Errorf("%d messages left stored, want %d", left, want)
			}
		})
	}
}
