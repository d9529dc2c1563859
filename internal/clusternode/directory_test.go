package clusternode

import (
	"encoding/json"
	"log/slog"
	"slices"
	"testing"

	"casp3r/internal/cluster"
	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/server"
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
