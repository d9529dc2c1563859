package clusternode_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"casp3r/internal/config"
	"casp3r/internal/jid"
	"casp3r/internal/server"
	"casp3r/internal/xmpptest"
)

// startLeafCluster starts three full nodes n1-n3, each with a leaf
// listener, and a leaf node "leaf" connecting to any of them, all at once
// (the leaf waits for the full nodes).
func startLeafCluster(t *testing.T) (full []*node, leaf *node) {
	t.Helper()
	routes := make([]string, 3)
	leafAddrs := make([]string, 3)
	for i := range routes {
		routes[i], leafAddrs[i] = freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	}
	var nodes []*node
	for i := range 4 {
		nodes = append(nodes, newNode(t, func(cfg *config.Config) {
			if i == 3 {
				cfg.Cluster.Name, cfg.Cluster.Leaf = "leaf", true
				cfg.Cluster.Peers = slices.Clone(leafAddrs)
				return
			}
			cfg.Cluster.Name = fmt.Sprintf("n%d", i+1)
			cfg.Cluster.Listen, cfg.Cluster.LeafListen = routes[i], leafAddrs[i]
			for j, r := range routes {
				if j != i {
					cfg.Cluster.Peers = append(cfg.Cluster.Peers, r)
				}
			}
		}))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.start() })
	}
	wg.Wait()
	// The leaf stops first, while the full nodes hold a quorum for the
	// removal of its session entries; then the full nodes, at once (one by
	// one, the last would lose its quorum while removing its own).
	t.Cleanup(func() {
		nodes[3].stop(t)
		var wg sync.WaitGroup
		for _, n := range nodes[:3] {
			wg.Go(func() { n.stop(t) })
		}
		wg.Wait()
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %s: %v", nodes[i].name, err)
		}
	}
	return nodes[:3], nodes[3]
}

// heardSince reports whether n's status file shows a heartbeat of the node
// called name received after t0.
func heardSince(n *node, name string, t0 time.Time) bool {
	st, err := server.ReadClusterStatus(filepath.Join(n.cfg.Dir, "cluster"))
	if err != nil {
		return false
	}
	for _, ns := range st.Nodes {
		if ns.Name == name {
			return ns.Up && ns.LastSeen.After(t0)
		}
	}
	return false
}

// TestLeafNode runs three full nodes and a leaf node: users on the leaf and
// on a full node subscribe to each other, see each other's presence and
// chat; accounts made through the leaf log in on full nodes and the other
// way round; the leaf holds no replica; when the full node the leaf is
// connected to stops, the leaf moves to another and goes on serving; every
// node ends with the same data.
func TestLeafNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four cluster nodes")
	}
	full, leaf := startLeafCluster(t)
	ctx := context.Background()

	// No vote, no replica: the leaf keeps no JetStream data at all, and
	// the log's replicas are the three full nodes.
	if _, err := os.Stat(filepath.Join(leaf.cfg.Dir, "cluster", "jetstream")); !os.IsNotExist(err) {
		t.Errorf("the leaf has a JetStream folder (%v)", err)
	}
	li, err := full[0].nats().LogInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(li.Replicas)
	if got, want := fmt.Sprint(li.Replicas), "[n1 n2 n3]"; got != want {
		t.Errorf("log replicas %s, want %s", got, want)
	}
	if li2, err := leaf.nats().LogInfo(ctx); err != nil || li2.Leader != li.Leader {
		t.Errorf("log info through the leaf: %+v, %v; want leader %s", li2, err, li.Leader)
	}
	hub := leaf.nats().Hub()
	h := slices.IndexFunc(full, func(n *node) bool { return n.name == hub })
	if h < 0 {
		t.Fatalf("the leaf is connected to %q, not a full node", hub)
	}
	// Bob lives on a full node the leaf is not connected to, so that it
	// survives the failover below; the third node is the other one.
	others := slices.Delete(slices.Clone(full), h, h+1)
	bobNode, third := others[0], others[1]

	// Writes through the leaf and through a full node reach every node.
	addUser(t, leaf, "alice", "a-pass")
	addUser(t, full[h], "bob", "b-pass")
	all := append(slices.Clone(full), leaf)
	waitFor(t, 10*time.Second, "accounts on every node", func() bool {
		for _, n := range all {
			for _, u := range []string{"alice", "bob"} {
				if ok, _ := n.srv.Store().AccountExists(ctx, u); !ok {
					return false
				}
			}
		}
		return true
	})

	alice := login(t, leaf, "alice", "a-pass", "pc")
	bob := login(t, bobNode, "bob", "b-pass", "phone")
	aliceJID, bobJID := "alice@"+domain, "bob@"+domain
	knows := func(n *node, user, node string) func() bool {
		return func() bool {
			for _, r := range n.srv.Router().Resources(jid.MustParse(user)) {
				if r.Node == node && r.Available {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, 10*time.Second, "bob's session known on the leaf", knows(leaf, bobJID, bobNode.name))
	waitFor(t, 10*time.Second, "alice's session known on bob's node", knows(bobNode, aliceJID, "leaf"))

	befriend(t, alice, aliceJID+"/pc", bob, bobJID+"/phone", "between the leaf and a full node")

	// Alice's account, made through the leaf, logs in on a full node;
	// bob's, made on a full node, logs in on the leaf.
	tablet := login(t, third, "alice", "a-pass", "tablet")
	laptop := login(t, leaf, "bob", "b-pass", "laptop")
	waitFor(t, 10*time.Second, "bob's laptop known on the third node", knows(third, bobJID, "leaf"))
	tablet.SendRaw("<message to='" + bobJID + "/laptop' type='chat'><body>tablet to laptop</body></message>")
	laptop.Expect("message from a full node to the leaf", xmpptest.IsMessage("tablet to laptop"))
	tablet.Close()
	laptop.Close()

	// The full node the leaf is connected to stops: the leaf moves to
	// another one and goes on serving.
	stopped := time.Now()
	full[h].stop(t)
	waitFor(t, 15*time.Second, "the leaf on another full node", func() bool {
		h2 := leaf.nats().Hub()
		return h2 != "" && h2 != hub
	})
	t.Logf("the leaf moved from %s to %s in %v", hub, leaf.nats().Hub(), time.Since(stopped).Round(time.Millisecond))
	// Heartbeats cross the new link both ways: each side knows the other's
	// subjects again.
	waitFor(t, 10*time.Second, "heartbeats over the new link", func() bool {
		return heardSince(leaf, bobNode.name, stopped) && heardSince(bobNode, "leaf", stopped)
	})
	if st, err := server.ReadClusterStatus(filepath.Join(bobNode.cfg.Dir, "cluster")); err != nil {
		t.Errorf("status of %s: %v", bobNode.name, err)
	} else {
		for _, ns := range st.Nodes {
			if got, want := ns.Leaf, ns.Name == "leaf"; got != want {
				t.Errorf("status of %s: node %s leaf = %v, want %v", bobNode.name, ns.Name, got, want)
			}
		}
	}
	alice.SendRaw("<message to='" + bobJID + "' type='chat'><body>after the failover</body></message>")
	bob.Expect("message from the leaf after the failover", xmpptest.IsMessage("after the failover"))
	bob.SendRaw("<message to='" + aliceJID + "/pc' type='chat'><body>still there</body></message>")
	alice.Expect("message to the leaf after the failover", xmpptest.IsMessage("still there"))
	addUser(t, leaf, "carol", "c-pass")
	waitFor(t, 10*time.Second, "an account made through the leaf after the failover", func() bool {
		for _, n := range []*node{bobNode, third} {
			if ok, _ := n.srv.Store().AccountExists(ctx, "carol"); !ok {
				return false
			}
		}
		return true
	})

	// The stopped node comes back and catches up; every node holds the
	// same data.
	if err := full[h].start(); err != nil {
		t.Fatalf("restart %s: %v", full[h].name, err)
	}
	waitFor(t, 30*time.Second, "equal data on every node", func() bool {
		d := digest(t, leaf)
		for _, n := range full {
			if digest(t, n) != d {
				return false
			}
		}
		return true
	})
	alice.Close()
	bob.Close()
}
