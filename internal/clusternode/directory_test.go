package clusternode

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"casp3r/internal/cluster"
	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/server"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// testDirectory returns a directory that mirrors other nodes' sessions
// into r, as on a running node, without NATS.
func testDirectory() (*directory, *router.Router) {
	r := routertest.NewRouter(router.Config{Domain: jid.MustParse("cluster.test")})
	return &directory{
		n:        &Node{p: server.ClusterParts{Router: r}, log: slog.New(slog.DiscardHandler)},
		remote:   make(map[string]router.Resource),
		directed: make(map[string][]jid.JID),
		seen:     make(map[string]seenMark),
		seenWake: make(chan struct{}),
	}, r
}

// TestRemoteChangedOrder feeds a node the states of another node's session
// as the announcement and the bucket can deliver them, in either order:
// the newest state wins, and a resource that ended stays ended.
func TestRemoteChangedOrder(t *testing.T) {
	full := jid.MustParse("bob@cluster.test/phone")
	key := sessionKey("b", full)
	put := func(seq uint64, prio int) cluster.SessionEvent {
		b, err := json.Marshal(sessionValue{JID: full.String(), Node: "b", Available: true, Priority: prio, Seq: seq})
		if err != nil {
			t.Fatal(err)
		}
		return cluster.SessionEvent{Key: key, Value: b}
	}
	gone := func(seq uint64) cluster.SessionEvent {
		b, _ := json.Marshal(sessionValue{JID: full.String(), Node: "b", Gone: true, Seq: seq})
		return cluster.SessionEvent{Key: key, Value: b}
	}
	deleted := cluster.SessionEvent{Key: key, Deleted: true}
	const absent = -100
	tests := []struct {
		name   string
		events []cluster.SessionEvent
		want   int // the priority in the router, or absent
	}{
		{"in order", []cluster.SessionEvent{put(1, 1), put(2, 2)}, 2},
		{"bucket copy after the announcement of a newer state", []cluster.SessionEvent{put(1, 1), put(2, 2), put(1, 1)}, 2},
		{"same state twice", []cluster.SessionEvent{put(2, 2), put(2, 2)}, 2},
		{"ended", []cluster.SessionEvent{put(1, 1), gone(2)}, absent},
		{"late put after the end", []cluster.SessionEvent{put(1, 1), gone(2), put(1, 1)}, absent},
		{"end arriving after a new session with the same JID", []cluster.SessionEvent{gone(2), put(3, 3), gone(2)}, 3},
		{"deleted by a survivor", []cluster.SessionEvent{put(1, 1), deleted}, absent},
		{"back after a survivor deleted it", []cluster.SessionEvent{put(1, 1), deleted, put(2, 2)}, 2},
		{"entry of an older version without seq", []cluster.SessionEvent{put(0, 4)}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r := testDirectory()
			for _, e := range tt.events {
				d.remoteChanged(e)
			}
			res, ok := r.Lookup(full)
			got := absent
			if ok {
				got = res.Priority
				if res.Node != "b" {
					t.Errorf("resource node = %q, want b", res.Node)
				}
			}
			if got != tt.want {
				t.Errorf("priority in the router = %d, want %d (%d = absent)", got, tt.want, absent)
			}
		})
	}
}

// TestDropNodeDirected: the resources of a dead node leave the router and
// come back with the JIDs they had sent directed presence to, which must
// hear of their end.
func TestDropNodeDirected(t *testing.T) {
	d, r := testDirectory()
	put := func(node, full string, directed ...string) {
		b, err := json.Marshal(sessionValue{JID: full, Node: node, Available: true, Seq: 1, Directed: directed})
		if err != nil {
			t.Fatal(err)
		}
		d.remoteChanged(cluster.SessionEvent{Key: sessionKey(node, jid.MustParse(full)), Value: b})
	}
	put("b", "bob@cluster.test/phone", "carol@cluster.test/desk", "room@muc.example.org/bob")
	put("c", "dan@cluster.test/pc")
	gone := d.dropNode("b")
	if len(gone) != 1 || gone[0].res.JID.String() != "bob@cluster.test/phone" {
		t.Fatalf("dropNode(b) = %+v, want bob's phone", gone)
	}
	var got []string
	for _, j := range gone[0].directed {
		got = append(got, j.String())
	}
	if want := []string{"carol@cluster.test/desk", "room@muc.example.org/bob"}; !slices.Equal(got, want) {
		t.Errorf("directed presence of bob's phone = %q, want %q", got, want)
	}
	if _, ok := r.Lookup(jid.MustParse("bob@cluster.test/phone")); ok {
		t.Errorf("bob's phone is still in the router")
	}
	if _, ok := r.Lookup(jid.MustParse("dan@cluster.test/pc")); !ok {
		t.Errorf("dan's pc on node c left the router with node b")
	}
}

// replier is a session whose user answers at once: Send records whether
// the sender of each stanza could be reached at that moment.
type replier struct {
	full      jid.JID
	r         *router.Router
	reachable chan bool
}

func (s *replier) JID() jid.JID              { return s.full }
func (s *replier) Close(*stanza.StreamError) {}
func (s *replier) Send(st *xmlstream.Element) {
	from, err := jid.Parse(st.Get("from"))
	_, ok := s.r.Lookup(from)
	s.reachable <- err == nil && ok
}

// TestStanzaWaitsForSenderSession: a stanza from a session another node
// bound a moment ago can reach this node before the announcement of that
// session does (they are handled apart). It is delivered only once the
// session is known here, so that the recipient's answer reaches it; a
// stanza whose sender's changes never come is delivered after causalWait.
func TestStanzaWaitsForSenderSession(t *testing.T) {
	carol := jid.MustParse("carol@cluster.test/raw")
	const seq = 7
	announce := func(d *directory) {
		b, err := json.Marshal(sessionValue{JID: carol.String(), Node: "c", Available: true, Seq: seq})
		if err != nil {
			t.Fatal(err)
		}
		d.remoteChanged(cluster.SessionEvent{Key: sessionKey("c", carol), Value: b})
	}
	tests := []struct {
		name      string
		fromSeq   string // the From-Seq header
		announce  string // when the announcement of carol's session comes: before, after (50 ms) the stanza, never
		reachable bool
		minWait   time.Duration
	}{
		{"announcement before the stanza", strconv.Itoa(seq), "before", true, 0},
		{"announcement after the stanza", strconv.Itoa(seq), "after", true, 50 * time.Millisecond},
		{"stanza without the sender's state", "", "after", false, 0},
		{"announcement lost", strconv.Itoa(seq), "never", false, causalWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r := testDirectory()
			d.n.ctx = t.Context()
			bob := &replier{full: jid.MustParse("bob@cluster.test/phone"), r: r, reachable: make(chan bool, 1)}
			if _, err := r.Bind(bob, bob.full.Bare(), bob.full.Resource()); err != nil {
				t.Fatal(err)
			}
			switch tt.announce {
			case "before":
				announce(d)
			case "after":
				time.AfterFunc(50*time.Millisecond, func() { announce(d) })
			}
			hdr := map[string]string{"Op": opSend, "To": bob.full.String(), "From-Key": sessionKey("c", carol), "From-Seq": tt.fromSeq}
			start := time.Now()
			d.serveNode(func(k string) string { return hdr[k] },
				[]byte(`<message from='carol@cluster.test/raw' to='bob@cluster.test/phone' type='chat'><body>hi</body></message>`))
			took := time.Since(start)
			var got bool
			select {
			case got = <-bob.reachable:
			default:
				t.Fatal("bob never got carol's message")
			}
			if got != tt.reachable {
				t.Errorf("carol reachable when bob got her message = %v, want %v", got, tt.reachable)
			}
			if took < tt.minWait {
				t.Errorf("delivered after %v, want at least %v", took, tt.minWait)
			}
			if took > causalWait+time.Second {
				t.Errorf("delivered after %v, want at most %v", took, causalWait)
			}
			if tt.announce != "never" {
				return
			}
			// The next stanza of that session does not wait in vain again.
			start = time.Now()
			d.serveNode(func(k string) string { return hdr[k] },
				[]byte(`<message from='carol@cluster.test/raw' to='bob@cluster.test/phone' type='chat'><body>again</body></message>`))
			<-bob.reachable
			if took := time.Since(start); took > causalWait/4 {
				t.Errorf("the next stanza of a session whose announcement never came waited %v again", took)
			}
		})
	}
}
