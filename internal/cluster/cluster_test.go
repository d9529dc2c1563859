package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const testSecret = "test secret: any bytes, even @:/ and spaces"

// testWriter sends log lines to t.Log until the test's cleanups are done;
// nats-server goroutines may still log while stopping.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// freePort returns a TCP port free on ip at the time of the call.
func freePort(t testing.TB, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// clusterConfigs returns configs for n nodes on 127.0.0.1, .2, … with free
// route ports, each listing the others as peers.
func clusterConfigs(t testing.TB, n int) []Config {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ip := fmt.Sprintf("127.0.0.%d", i+1)
		addrs[i] = net.JoinHostPort(ip, fmt.Sprint(freePort(t, ip)))
	}
	cfgs := make([]Config, n)
	for i := range cfgs {
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		cfgs[i] = Config{
			Name:        string(rune('a' + i)),
			Dir:         t.TempDir(),
			RouteListen: addrs[i],
			Peers:       peers,
			Secret:      testSecret,
		}
	}
	return cfgs
}

// startNodes starts the nodes concurrently (a quorum must be up before any
// Start returns) and shuts them down when the test ends.
func startNodes(t testing.TB, cfgs []Config) []*Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := make([]*Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		if cfg.Logger == nil {
			cfg.Logger = testLogger(t).With("node", cfg.Name)
		}
		wg.Go(func() { nodes[i], errs[i] = Start(ctx, cfg) })
	}
	wg.Wait()
	for _, n := range nodes {
		if n != nil {
			t.Cleanup(func() { shutdown(t, n) })
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start: %v", err)
	}
	return nodes
}

func shutdown(t testing.TB, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Errorf("shutdown %s: %v", n.Name(), err)
	}
}

// poll calls cond every 20ms until it returns nil, or returns its last error
// once d has passed.
func poll(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}

// waitFor polls cond until it returns nil and fails the test if it does not
// within d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	if err := poll(d, cond); err != nil {
		t.Fatalf("%s: not after %s: %v", what, d, err)
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantLog polls n's log of account until it holds exactly want.
func wantLog(t testing.TB, n *Node, account string, want ...string) {
	t.Helper()
	waitFor(t, 10*time.Second, "log of "+account+" on "+n.Name(), func() error {
		got, err := n.ReadLog(testCtx(t), account, 0)
		if err != nil {
			return err
		}
		if g, w := fmt.Sprintf("%q", got), fmt.Sprintf("%q", want); g != w {
			return fmt.Errorf("got %s, want %s", g, w)
		}
		return nil
	})
}

func TestConfigErrors(t *testing.T) {
	ok := Config{Name: "a", Dir: "/tmp/x", RouteListen: "127.0.0.1:6222", Peers: []string{"127.0.0.2:6222", "127.0.0.3:6222"}, Secret: "s"}
	leaf := func(c *Config) { c.Leaf, c.RouteListen, c.Peers = true, "", []string{"127.0.0.2:7423"} }
	tests := []struct {
		name   string
		edit   func(c *Config)
		errHas string // empty: no error
	}{
		{"ok", func(c *Config) {}, ""},
		{"single node", func(c *Config) { c.Peers, c.RouteListen, c.Secret = nil, "", "" }, ""},
		{"no name", func(c *Config) { c.Name = "" }, "cluster.name"},
		{"no dir", func(c *Config) { c.Dir = "" }, "cluster.dir"},
		{"no secret", func(c *Config) { c.Secret = "" }, "cluster.secret"},
		{"bad listen", func(c *Config) { c.RouteListen = "127.0.0.1" }, "cluster.listen"},
		{"bad peer", func(c *Config) { c.Peers = []string{"127.0.0.2:x"} }, "cluster.peers"},
		{"replicas above size", func(c *Config) { c.Replicas = 4 }, "cluster.replicas"},
		{"short ttl", func(c *Config) { c.SessionTTL = time.Millisecond }, "cluster.session_ttl"},
		{"full node, bad leaf listen", func(c *Config) { c.LeafListen = "127.0.0.1" }, "cluster.leaf_listen"},
		{"leaf", leaf, ""},
		{"leaf without peers", func(c *Config) { leaf(c); c.Peers = nil }, "cluster.peers: empty"},
		{"leaf with routes", func(c *Config) { leaf(c); c.RouteListen = "127.0.0.1:7422" }, "a leaf node has no routes"},
		{"leaf taking leaves", func(c *Config) { leaf(c); c.LeafListen = "127.0.0.1:7423" }, "only full nodes accept leaf nodes"},
		{"leaf without secret", func(c *Config) { leaf(c); c.Secret = "" }, "cluster.secret"},
		{"leaf, bad peer", func(c *Config) { leaf(c); c.Peers = []string{"127.0.0.2"} }, "cluster.peers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.normalize()
			switch {
			case tt.errHas == "" && err != nil:
				t.Fatalf("normalize: %v", err)
			case tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas)):
				t.Fatalf("normalize: %v, want an error naming %s", err, tt.errHas)
			}
		})
	}
	c := ok
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Replicas, 3; got != want {
		t.Errorf("default replicas = %d, want %d", got, want)
	}
	c = Config{Name: "a", Dir: "/tmp/x"}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Replicas, 1; got != want {
		t.Errorf("single-node default replicas = %d, want %d", got, want)
	}
}

func TestSingleNode(t *testing.T) {
	n := startNodes(t, []Config{{Name: "solo", Dir: t.TempDir()}})[0]
	ctx := testCtx(t)
	if addr := n.srv.Addr(); addr != nil {
		t.Errorf("client port open at %v", addr)
	}
	if err := n.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	for i, data := range []string{"one", "two"} {
		seq, err := n.Append(ctx, "alice@example.org", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := seq, uint64(i+1); got != want {
			t.Errorf("seq = %d, want %d", got, want)
		}
	}
	wantLog(t, n, "alice@example.org", "one", "two")
	wantLog(t, n, "bob@example.org")

	got := make(chan []byte, 1)
	unsub, err := n.Subscribe(UserSubject("alice@example.org"), func(b []byte) { got <- b })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	if err := n.Publish(ctx, UserSubject("alice@example.org"), []byte("<message/>")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b) != "<message/>" {
			t.Errorf("received %q", b)
		}
	case <-ctx.Done():
		t.Fatal("no message")
	}
}

func TestCluster(t *testing.T) {
	cfgs := clusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].SessionTTL = 2 * time.Second
	}
	nodes := startNodes(t, cfgs)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := testCtx(t)

	// nats-server needs a client listener for routes to start; it must
	// refuse every connection from outside the process.
	for _, n := range nodes {
		addr := n.srv.Addr()
		if addr == nil {
			continue
		}
		if tcp := addr.(*net.TCPAddr); !tcp.IP.IsLoopback() {
			t.Errorf("%s: client listener on %v, want loopback", n.Name(), addr)
		}
		nc, err := nats.Connect("nats://"+addr.String(), nats.NoReconnect(), nats.Timeout(2*time.Second))
		if err == nil {
			nc.Close()
			t.Errorf("%s: TCP client admitted on %v", n.Name(), addr)
		}
	}

	// Every node ensures the streams at once, as every node does at start.
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.EnsureStreams(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	t.Run("streams created once", func(t *testing.T) {
		var created time.Time
		for _, n := range nodes {
			s, err := n.js.Stream(ctx, LogStream)
			if err != nil {
				t.Fatal(err)
			}
			info := s.CachedInfo()
			if got, want := info.Config.Replicas, 3; got != want {
				t.Errorf("%s: replicas = %d, want %d", n.Name(), got, want)
			}
			if created.IsZero() {
				created = info.Created
			} else if !info.Created.Equal(created) {
				t.Errorf("%s: created %v, others %v", n.Name(), info.Created, created)
			}
		}
		if err := b.EnsureStreams(ctx); err != nil {
			t.Fatal(err)
		}
		s, err := c.js.Stream(ctx, LogStream)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Created; !got.Equal(created) {
			t.Errorf("created %v after a second EnsureStreams, was %v", got, created)
		}
		var names []string
		for name := range a.js.StreamNames(ctx).Name() {
			names = append(names, name)
		}
		if got, want := strings.Join(names, ","), "KV_sessions,LOGS"; got != want && got != "LOGS,KV_sessions" {
			t.Errorf("streams = %s, want %s", got, want)
		}
	})

	t.Run("append on one, read on the others", func(t *testing.T) {
		var last uint64
		for _, data := range []string{"e1", "e2", "e3"} {
			seq, err := a.Append(ctx, "alice@example.org", []byte(data))
			if err != nil {
				t.Fatal(err)
			}
			if seq <= last {
				t.Errorf("seq %d after %d", seq, last)
			}
			last = seq
		}
		if _, err := c.Append(ctx, "bob@example.org", []byte("b1")); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			wantLog(t, n, "alice@example.org", "e1", "e2", "e3")
			wantLog(t, n, "bob@example.org", "b1")
		}
		es, err := b.ReadEntries(ctx, "alice@example.org", 0)
		if err != nil {
			t.Fatal(err)
		}
		rest, err := c.ReadEntries(ctx, "alice@example.org", es[0].Seq)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(rest), 2; got != want || string(rest[0].Data) != "e2" {
			t.Errorf("entries after %d: %d starting %q, want %d starting e2", es[0].Seq, got, rest[0].Data, want)
		}
	})

	t.Run("publish reaches another node", func(t *testing.T) {
		subj := UserSubject("carol@example.org")
		got := make(chan []byte, 4)
		unsub, err := c.Subscribe(subj, func(b []byte) { got <- b })
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
		waitFor(t, 5*time.Second, "interest reaches a", func() error {
			if !a.srv.GlobalAccount().SubscriptionInterest(subj) {
				return errors.New("no interest")
			}
			return nil
		})
		if err := a.Publish(ctx, subj, []byte("<message>hi</message>")); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if string(b) != "<message>hi</message>" {
				t.Errorf("received %q", b)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no message on c")
		}
	})

	t.Run("sessions", func(t *testing.T) {
		key := Token("alice@example.org") + "." + Token("phone")
		if _, err := a.PutSession(ctx, key, []byte("available")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "session visible on b", func() error {
			v, err := b.GetSession(ctx, key)
			if err == nil && string(v) != "available" {
				err = fmt.Errorf("value %q", v)
			}
			return err
		})
		if err := c.DeleteSession(ctx, key); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "session deleted on a", func() error {
			if _, err := a.GetSession(ctx, key); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("err = %v", err)
			}
			return nil
		})
		// An entry nobody refreshes expires after SessionTTL (2s here).
		if _, err := b.PutSession(ctx, key, []byte("away")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "session expired", func() error {
			if _, err := c.GetSession(ctx, key); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("err = %v", err)
			}
			return nil
		})
	})

	t.Run("wrong secret cannot join", func(t *testing.T) {
		ip := "127.0.0.4"
		cfg := Config{
			Name:        "intruder",
			Dir:         t.TempDir(),
			RouteListen: net.JoinHostPort(ip, fmt.Sprint(freePort(t, ip))),
			Peers:       []string{cfgs[0].RouteListen},
			Secret:      "wrong",
			Logger:      slog.New(slog.DiscardHandler),
		}
		routes := a.srv.NumRoutes()
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := Start(sctx, cfg)
		if err == nil {
			shutdown(t, n)
			t.Fatal("Start with a wrong secret succeeded")
		}
		if got := a.srv.NumRoutes(); got != routes {
			t.Errorf("routes on a: %d, was %d", got, routes)
		}
	})
}

func TestStartFailsOnTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := Config{
		Name: "a", Dir: t.TempDir(), RouteListen: l.Addr().String(),
		Peers: []string{"127.0.0.2:1"}, Secret: "s", Logger: slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	n, err := Start(ctx, cfg)
	if err == nil {
		shutdown(t, n)
		t.Fatal("Start succeeded on a taken port")
	}
	if !strings.Contains(err.Error(), "listening") {
		t.Errorf("err = %v, want the listen failure", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Start took %s to fail", d)
	}
}

// localLastSeq returns the last sequence of the log stream in n's own
// replica, read from its server without asking the leader.
func localLastSeq(srv *server.Server) (uint64, error) {
	jsz, err := srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return 0, err
	}
	for _, acc := range jsz.AccountDetails {
		for _, s := range acc.Streams {
			if s.Name == LogStream {
				return s.State.LastSeq, nil
			}
		}
	}
	return 0, errors.New("no local replica of " + LogStream)
}

// streamLeader returns the current leader of a stream and its last sequence,
// asked through n.
func streamLeader(ctx context.Context, n *Node, stream string) (string, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second) // no answer while leaderless
	defer cancel()
	s, err := n.js.Stream(ctx, stream)
	if err != nil {
		return "", 0, err
	}
	info := s.CachedInfo()
	if info.Cluster == nil {
		return "", 0, errors.New("no cluster info")
	}
	return info.Cluster.Leader, info.State.LastSeq, nil
}
