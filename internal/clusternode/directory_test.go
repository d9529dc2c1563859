package clusternode

import (
	"encoding/json"
	"log/slog"
	"testing"

	"casp3r/internal/cluster"
	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/server"
)

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
			r := routertest.NewRouter(router.Config{Domain: jid.MustParse("cluster.test")})
			d := &directory{
				n:      &Node{p: server.ClusterParts{Router: r}, log: slog.New(slog.DiscardHandler)},
				remote: make(map[string]router.Resource),
				seen:   make(map[string]seenMark),
			}
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
