package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// leafConfigs gives each of cfgs a leaf listener on its IP and returns the
// config of a leaf node (on 127.0.0.9) connecting to all of them.
func leafConfigs(t testing.TB, cfgs []Config) Config {
	t.Helper()
	leaf := Config{Name: "leaf", Dir: t.TempDir(), Leaf: true, Secret: testSecret}
	for i := range cfgs {
		ip, _, _ := net.SplitHostPort(cfgs[i].RouteListen)
		cfgs[i].LeafListen = net.JoinHostPort(ip, fmt.Sprint(freePort(t, ip)))
		leaf.Peers = append(leaf.Peers, cfgs[i].LeafListen)
	}
	return leaf
}

// TestLeaf runs three full nodes and a leaf node: the leaf reads and writes
// the log and the session bucket through the full nodes, exchanges core
// messages with them, holds no replica and no vote, and fails over to
// another full node when the one it is connected to stops.
func TestLeaf(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	cfgs := clusterConfigs(t, 3)
	leafCfg := leafConfigs(t, cfgs)
	full := startNodes(t, cfgs)
	ctx := testCtx(t)

	leaf := startNodes(t, []Config{leafCfg})[0]
	if addr := leaf.srv.Addr(); addr != nil {
		t.Errorf("leaf: client port open at %v", addr)
	}
	if leaf.srv.JetStreamEnabled() {
		t.Error("leaf: JetStream enabled")
	}
	// The leaf waits for the streams the full nodes make.
	leafReady := make(chan error, 1)
	go func() { leafReady <- leaf.EnsureStreams(ctx) }()
	var wg sync.WaitGroup
	errs := make([]error, len(full))
	for i, n := range full {
		wg.Go(func() { errs[i] = n.EnsureStreams(ctx) })
	}
	wg.Wait()
	if err := errors.Join(append(errs, <-leafReady)...); err != nil {
		t.Fatal(err)
	}
	if hub := leaf.Hub(); hub == "" {
		t.Fatal("leaf not connected to a full node")
	}

	t.Run("no replica, no vote", func(t *testing.T) {
		for _, stream := range []string{LogStream, "KV_" + SessionBucket} {
			s, err := leaf.js.Stream(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			info := s.CachedInfo()
			if info.Cluster == nil {
				t.Fatalf("%s: no cluster info", stream)
			}
			names := []string{info.Cluster.Leader}
			for _, r := range info.Cluster.Replicas {
				names = append(names, r.Name)
			}
			if got, want := len(names), 3; got != want || slices.Contains(names, "leaf") {
				t.Errorf("%s: leader and replicas %v, want 3 full nodes", stream, names)
			}
		}
		jsz, err := full[0].srv.Jsz(nil)
		if err != nil {
			t.Fatal(err)
		}
		if jsz.Meta == nil {
			t.Fatal("no meta group")
		}
		voters := []string{jsz.Meta.Leader}
		for _, r := range jsz.Meta.Replicas {
			voters = append(voters, r.Name)
		}
		if jsz.Meta.Size != 3 || len(voters) != 3 || slices.Contains(voters, "leaf") {
			t.Errorf("meta group of %d: %v, want the 3 full nodes", jsz.Meta.Size, voters)
		}
		// EnsureStreams on the leaf changed nothing.
		s, err := full[1].js.Stream(ctx, LogStream)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("replicas = %d after the leaf's EnsureStreams", got)
		}
	})

	t.Run("log through the leaf", func(t *testing.T) {
		if _, err := leaf.Append(ctx, "alice@example.org", []byte("from leaf")); err != nil {
			t.Fatal(err)
		}
		if _, err := full[1].Append(ctx, "alice@example.org", []byte("from b")); err != nil {
			t.Fatal(err)
		}
		for _, n := range append(full, leaf) {
			wantLog(t, n, "alice@example.org", "from leaf", "from b")
		}
		es, err := leaf.ReadEntries(ctx, "alice@example.org", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.AppendAt(ctx, "alice@example.org", es[0].Seq, []byte("stale")); !errors.Is(err, ErrConflict) {
			t.Errorf("AppendAt behind the log's end from the leaf: %v, want ErrConflict", err)
		}
		pos, err := leaf.AppendAt(ctx, "alice@example.org", es[1].Seq, []byte("third"))
		if err != nil {
			t.Fatal(err)
		}
		if last, err := leaf.LastPos(ctx); err != nil || last != pos {
			t.Errorf("LastPos on the leaf = %d, %v; want %d", last, err, pos)
		}
		// Follow on the leaf sees every entry, in order.
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		got := make(chan string, 16)
		go func() {
			_ = leaf.Follow(fctx, 0, func(batch []Entry) error {
				for _, e := range batch {
					got <- string(e.Data)
				}
				return nil
			})
		}()
		for _, want := range []string{"from leaf", "from b", "third"} {
			select {
			case g := <-got:
				if g != want {
					t.Errorf("Follow on the leaf: %q, want %q", g, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Follow on the leaf: no %q", want)
			}
		}
	})

	t.Run("sessions through the leaf", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		events := make(chan SessionEvent, 16)
		go func() { _ = leaf.WatchSessions(wctx, ">", func(e SessionEvent) { events <- e }) }()
		waitEvent := func(what string, match func(SessionEvent) bool) {
			t.Helper()
			deadline := time.After(10 * time.Second)
			for {
				select {
				case e := <-events:
					if match(e) {
						return
					}
				case <-deadline:
					t.Fatalf("leaf's watch: no %s", what)
				}
			}
		}
		waitEvent("ready", func(e SessionEvent) bool { return e.Ready })
		if _, err := leaf.PutSession(ctx, "s.leaf.x", []byte("on leaf")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the leaf's session on c", func() error {
			v, err := full[2].GetSession(ctx, "s.leaf.x")
			if err == nil && string(v) != "on leaf" {
				err = fmt.Errorf("value %q", v)
			}
			return err
		})
		if _, err := full[0].PutSession(ctx, "s.a.y", []byte("on a")); err != nil {
			t.Fatal(err)
		}
		waitEvent("a's session", func(e SessionEvent) bool { return e.Key == "s.a.y" && string(e.Value) == "on a" })
		if v, err := leaf.GetSession(ctx, "s.a.y"); err != nil || string(v) != "on a" {
			t.Errorf("GetSession on the leaf = %q, %v", v, err)
		}
		if err := leaf.DeleteSession(ctx, "s.a.y"); err != nil {
			t.Fatal(err)
		}
		waitEvent("the deletion", func(e SessionEvent) bool { return e.Key == "s.a.y" && e.Deleted })
	})

	requestBothWays(t, ctx, full[0], leaf)

	t.Run("wrong secret", func(t *testing.T) {
		bad := leafCfg
		bad.Name, bad.Dir, bad.Secret = "intruder", t.TempDir(), "wrong"
		bad.Logger = slog.New(slog.DiscardHandler)
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := Start(sctx, bad)
		if err == nil {
			shutdown(t, n)
			t.Fatal("a leaf with a wrong secret started")
		}
		for _, f := range full {
			if got := f.LeafNodes(); slices.Contains(got, "intruder") {
				t.Errorf("%s: leaf nodes %v", f.Name(), got)
			}
		}
	})

	t.Run("failover", func(t *testing.T) {
		hub := leaf.Hub()
		i := slices.IndexFunc(full, func(n *Node) bool { return n.Name() == hub })
		if i < 0 {
			t.Fatalf("leaf connected to %q, not a full node", hub)
		}
		shutdown(t, full[i])
		rest := slices.Delete(slices.Clone(full), i, i+1)
		start := time.Now()
		waitFor(t, 15*time.Second, "the leaf on another full node", func() error {
			if h := leaf.Hub(); h == "" || h == hub {
				return fmt.Errorf("hub %q", h)
			}
			return nil
		})
		if _, err := leaf.Append(ctx, "bob@example.org", []byte("after failover")); err != nil {
			t.Fatal(err)
		}
		t.Logf("leaf moved from %s to %s and appended in %v", hub, leaf.Hub(), time.Since(start).Round(time.Millisecond))
		for _, n := range append(rest, leaf) {
			wantLog(t, n, "bob@example.org", "after failover")
		}
		requestBothWays(t, ctx, rest[0], leaf)
	})
}

// requestBothWays checks that requests on core subjects cross between a
// full node and a leaf node, in both directions.
func requestBothWays(t *testing.T, ctx context.Context, f, leaf *Node) {
	t.Helper()
	for _, p := range [][2]*Node{{f, leaf}, {leaf, f}} {
		from, to := p[0], p[1]
		subj := "casp3r.node." + to.Name()
		stop, err := to.Serve(subj, func(hdr func(string) string, data []byte) []byte {
			return []byte(hdr("From") + ":" + string(data))
		})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "a request from "+from.Name()+" to "+to.Name(), func() error {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			got, err := from.Request(rctx, subj, map[string]string{"From": from.Name()}, []byte("ping"))
			if err == nil && string(got) != from.Name()+":ping" {
				err = fmt.Errorf("reply %q", got)
			}
			return err
		})
		stop()
	}
}

// TestLeafLearnsFullNodes: a leaf node given one full node's leaf address
// learns the others' from it (nats-server gossips them) and moves to one of
// them when that node stops.
func TestLeafLearnsFullNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	cfgs := clusterConfigs(t, 3)
	leafCfg := leafConfigs(t, cfgs)
	leafCfg.Peers = leafCfg.Peers[:1]
	full := startNodes(t, cfgs)
	leaf := startNodes(t, []Config{leafCfg})[0]
	if got := leaf.Hub(); got != full[0].Name() {
		t.Fatalf("leaf connected to %q, want %s (its only peer)", got, full[0].Name())
	}
	shutdown(t, full[0])
	waitFor(t, 15*time.Second, "the leaf on another full node", func() error {
		if h := leaf.Hub(); h == "" || h == full[0].Name() {
			return fmt.Errorf("hub %q", h)
		}
		return nil
	})
}
