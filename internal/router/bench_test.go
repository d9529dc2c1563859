package router

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// dropSession is a bound session whose Send only counts.
type dropSession struct {
	jid  jid.JID
	sent atomic.Int64
}

func (s *dropSession) JID() jid.JID              { return s.jid }
func (s *dropSession) Send(*xmlstream.Element)   { s.sent.Add(1) }
func (s *dropSession) Close(*stanza.StreamError) {}

var _ Session = (*dropSession)(nil)

// benchPresence is a presence handler that does nothing.
type benchPresence struct{}

func (benchPresence) Outbound(context.Context, *xmlstream.Element) error { return nil }
func (benchPresence) Inbound(context.Context, *xmlstream.Element) error  { return nil }
func (benchPresence) Ended(context.Context, Resource, []jid.JID)         {}

// benchStore is the offline store and the account list: every account
// exists, and offline messages are counted.
type benchStore struct{ stored atomic.Int64 }

func (s *benchStore) StoreOffline(context.Context, string, *xmlstream.Element) error {
	s.stored.Add(1)
	return nil
}

func (s *benchStore) AccountExists(context.Context, string) (bool, error) { return true, nil }

// benchRouter returns a router for example.net with n accounts user0..
// user(n-1), each with one available resource "phone".
func benchRouter(b *testing.B, n int) (*Router, *benchStore, []*dropSession) {
	b.Helper()
	st := &benchStore{}
	r := New(Config{Domain: jid.MustParse("example.net"), Presence: benchPresence{}, Offline: st, Accounts: st})
	sess := make([]*dropSession, n)
	for i := range sess {
		bare := jid.MustParse("user" + strconv.Itoa(i) + "@example.net")
		s := &dropSession{}
		full, err := r.Bind(s, bare, "phone")
		if err != nil {
			b.Fatalf("bind %s: %v", bare, err)
		}
		s.jid = full
		r.SetPresence(full, xmlstream.New(xmlstream.NSClient, "presence", "from", full.String()), 0)
		sess[i] = s
	}
	return r, st, sess
}

// chatMessage is a message from a client, from stamped as c2s does.
func chatMessage(from jid.JID, to string) *xmlstream.Element {
	return xmlstream.New(xmlstream.NSClient, "message", "from", from.String(), "to", to, "type", "chat", "id", "m1").
		Append(xmlstream.New(xmlstream.NSClient, "body").SetText("Wherefore art thou?"))
}

// BenchmarkRouteMessage routes one chat message between two bound sessions:
// to the recipient's bare JID (RFC 6121 §8.5.2.1.1), to its full JID, and
// to an account with no available resource (offline storage).
func BenchmarkRouteMessage(b *testing.B) {
	ctx := context.Background()
	cases := []struct {
		name string
		to   func(recipient *dropSession) string
	}{
		{"bare", func(s *dropSession) string { return s.jid.Bare().String() }},
		{"full", func(s *dropSession) string { return s.jid.String() }},
		{"offline", func(*dropSession) string { return "absent@example.net" }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r, st, sess := benchRouter(b, 2)
			m := chatMessage(sess[0].jid, c.to(sess[1]))
			b.ReportAllocs()
			for b.Loop() {
				r.RouteFromClient(ctx, m)
			}
			if got := sess[1].sent.Load() + st.stored.Load(); got < int64(b.N) {
				b.Fatalf("%d of %d messages delivered", got, b.N)
			}
			if got := sess[0].sent.Load(); got != 0 {
				b.Fatalf("sender got %d stanzas (errors?)", got)
			}
		})
	}
}

// BenchmarkRouteParallel routes chat messages to bare JIDs from all
// GOMAXPROCS goroutines at once over 1,000 accounts, each sending to the
// next one: the session table's lock under contention.
func BenchmarkRouteParallel(b *testing.B) {
	const accounts = 1000
	ctx := context.Background()
	r, _, sess := benchRouter(b, accounts)
	msgs := make([]*xmlstream.Element, accounts)
	for i := range msgs {
		msgs[i] = chatMessage(sess[i].jid, sess[(i+1)%accounts].jid.Bare().String())
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(accounts/8)) % accounts // spread the goroutines over the ring
		for pb.Next() {
			r.RouteFromClient(ctx, msgs[i])
			if i++; i == accounts {
				i = 0
			}
		}
	})
	b.StopTimer()
	var total int64
	for _, s := range sess {
		total += s.sent.Load()
	}
	if total < int64(b.N) {
		b.Fatalf("%d of %d messages delivered", total, b.N)
	}
}
