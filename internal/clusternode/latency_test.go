package clusternode_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"casp3r/internal/jid"
	"casp3r/internal/sasl"
	"casp3r/internal/storage"
	"casp3r/internal/xmpptest"
)

// TestSlowLinks runs the cluster over links that add 100 ms each way, as
// between homes in different towns: users on different nodes still get
// every message, in order, and the cross-node latency is logged.
func TestSlowLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three cluster nodes")
	}
	const delay = 100 * time.Millisecond
	nodes, _ := startClusterLinks(t, 3, true, delay, nil)
	// Over such links the streams' leaders may still be settling when the
	// nodes are up: the first write is retried (with new names, as a write
	// that timed out may still land) and its wait logged.
	start, probes := time.Now(), 0
	waitFor(t, 60*time.Second, "the shared log taking a write over the slow links", func() bool {
		probes++
		c, err := sasl.NewCredentials("p", 4096)
		if err != nil {
			t.Fatal(err)
		}
		err = nodes[0].srv.Store().CreateAccount(context.Background(), fmt.Sprintf("probe%d", probes),
			storage.Credentials{SHA1: storage.ScramKeys(c.SHA1), SHA256: storage.ScramKeys(c.SHA256)})
		return err == nil
	})
	t.Logf("first write through the shared log after %v (%d tries)", time.Since(start).Round(time.Millisecond), probes)
	addUser(t, nodes[0], "alice", "a")
	addUser(t, nodes[0], "bob", "b")
	waitFor(t, 20*time.Second, "bob's account on node 2", func() bool {
		ok, _ := nodes[1].srv.Store().AccountExists(t.Context(), "bob")
		return ok
	})
	alice := login(t, nodes[0], "alice", "a", "pc")
	bob := login(t, nodes[1], "bob", "b", "phone")
	bobJID := "bob@" + domain
	waitFor(t, 20*time.Second, "bob's session known on node 1", func() bool {
		for _, r := range nodes[0].srv.Router().Resources(jid.MustParse(bobJID)) {
			if r.Node == "n2" && r.Available {
				return true
			}
		}
		return false
	})
	const count = 40
	var lat []time.Duration
	for i := range count {
		body := fmt.Sprintf("slow %d", i)
		sent := time.Now()
		alice.SendRaw("<message to='" + bobJID + "/phone' type='chat'><body>" + body + "</body></message>")
		bob.Expect(body, xmpptest.IsMessage(body))
		lat = append(lat, time.Since(sent))
	}
	slices.Sort(lat)
	t.Logf("one-way link delay %v: cross-node message latency p50 %v, p99 %v (n=%d)", delay,
		lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), len(lat))
	if lat[0] < delay {
		t.Errorf("a message crossed a %v link in %v: the link is bypassed", delay, lat[0])
	}
}
