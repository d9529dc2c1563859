// Package routertest provides fakes for testing code that plugs into the
// router: a Session that records what it is sent, no-op presence and
// offline handlers, and an accounts set.
package routertest

import (
	"context"
	"sync"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

var (
	_ router.Session         = (*Session)(nil)
	_ router.PresenceHandler = NopPresence{}
	_ router.OfflineStore    = NopOffline{}
	_ router.Accounts        = Accounts(nil)
)

// Session is a router.Session that records the stanzas it is sent and the
// stream error it is closed with. It is safe for concurrent use.
type Session struct {
	mu     sync.Mutex
	jid    jid.JID
	sent   []*xmlstream.Element
	closed *stanza.StreamError
}

// NewSession returns a session whose full JID is j.
func NewSession(j jid.JID) *Session { return &Session{jid: j} }

// Bind binds a new session to r as full (bare JID and resource) and
// returns it, with its JID set to the one the router assigned. It fails
// the test if full does not parse or the router refuses the bind.
func Bind(t testing.TB, r *router.Router, full string) *Session {
	t.Helper()
	j, err := jid.Parse(full)
	if err != nil {
		t.Fatalf("bind %q: %v", full, err)
	}
	s := NewSession(j)
	bound, err := r.Bind(s, j.Bare(), j.Resource())
	if err != nil {
		t.Fatalf("bind %q: %v", full, err)
	}
	s.mu.Lock()
	s.jid = bound
	s.mu.Unlock()
	return s
}

// Ask sends st from s as its client would: it stamps st's from with s's
// JID and routes it with r.RouteFromClient. It returns the one stanza s is
// sent in reply, and fails the test if there is not exactly one.
func Ask(t testing.TB, r *router.Router, s *Session, st *xmlstream.Element) *xmlstream.Element {
	t.Helper()
	st.SetAttr("from", s.JID().String())
	r.RouteFromClient(context.Background(), st)
	got := s.Take()
	if len(got) != 1 {
		t.Fatalf("got %d replies, want 1", len(got))
	}
	return got[0]
}

// JID returns the session's full JID.
func (s *Session) JID() jid.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jid
}

// Send records st.
func (s *Session) Send(st *xmlstream.Element) {
	s.mu.Lock()
	s.sent = append(s.sent, st)
	s.mu.Unlock()
}

// Close records err; see Closed.
func (s *Session) Close(err *stanza.StreamError) {
	s.mu.Lock()
	s.closed = err
	s.mu.Unlock()
}

// Take returns the stanzas sent since the last Take, oldest first, and
// forgets them.
func (s *Session) Take() []*xmlstream.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sent
	s.sent = nil
	return out
}

// Closed returns the stream error of the last Close, or nil if Close was
// not called.
func (s *Session) Closed() *stanza.StreamError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// NopPresence is a router.PresenceHandler that does nothing.
type NopPresence struct{}

// Outbound does nothing.
func (NopPresence) Outbound(context.Context, *xmlstream.Element) error { return nil }

// Inbound does nothing.
func (NopPresence) Inbound(context.Context, *xmlstream.Element) error { return nil }

// Ended does nothing.
func (NopPresence) Ended(context.Context, router.Resource, []jid.JID) {}

// NopOffline is a router.OfflineStore that drops every message.
type NopOffline struct{}

// StoreOffline drops st.
func (NopOffline) StoreOffline(context.Context, string, *xmlstream.Element) error { return nil }

// Accounts is a router.Accounts holding the users mapped to true; a nil
// Accounts holds none.
type Accounts map[string]bool

// AccountExists reports whether a[user] is true.
func (a Accounts) AccountExists(_ context.Context, user string) (bool, error) { return a[user], nil }

// NewRouter returns router.New(cfg) with NopPresence, NopOffline and an
// empty Accounts in place of the Presence, Offline and Accounts fields left
// nil.
func NewRouter(cfg router.Config) *router.Router {
	if cfg.Presence == nil {
		cfg.Presence = NopPresence{}
	}
	if cfg.Offline == nil {
		cfg.Offline = NopOffline{}
	}
	if cfg.Accounts == nil {
		cfg.Accounts = Accounts(nil)
	}
	return router.New(cfg)
}
