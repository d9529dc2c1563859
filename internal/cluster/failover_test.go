package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// childEnv carries a Config (as JSON) to a re-executed test binary, which
// then runs one node as a separate process the test can SIGKILL.
const childEnv = "CASP3R_CLUSTER_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	os.Exit(m.Run())
}

// childConfig is the part of Config a child node needs.
type childConfig struct {
	Name, Dir, RouteListen, Secret string
	Peers                          []string
}

// runChild runs one node until its stdin closes. It prints "ready" once
// started and answers "test.<name>.lastseq" with the last sequence of its own
// replica of the log stream.
func runChild(js string) int {
	var cc childConfig
	if err := json.Unmarshal([]byte(js), &cc); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{
		Name: cc.Name, Dir: cc.Dir, RouteListen: cc.RouteListen,
		Peers: cc.Peers, Secret: cc.Secret, Logger: log.With("node", cc.Name),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child start:", err)
		return 1
	}
	_, err = n.nc.Subscribe("test."+cc.Name+".lastseq", func(m *nats.Msg) {
		seq, err := localLastSeq(n.srv)
		reply := strconv.FormatUint(seq, 10)
		if err != nil {
			reply = "error: " + err.Error()
		}
		_ = m.Respond([]byte(reply))
	})
	if err == nil {
		err = n.nc.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child subscribe:", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it or dies
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := n.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "child shutdown:", err)
		return 1
	}
	return 0
}

// child is a node running in another process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startChild starts cfg as a node in a child process; ready is closed when
// it has printed "ready", or the child's error is sent.
func startChild(t *testing.T, cfg Config) (*child, <-chan error) {
	t.Helper()
	js, err := json.Marshal(childConfig{
		Name: cfg.Name, Dir: cfg.Dir, RouteListen: cfg.RouteListen, Secret: cfg.Secret, Peers: cfg.Peers,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	c := &child{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() && sc.Text() == "ready" {
			ready <- nil
		} else {
			ready <- fmt.Errorf("child %s did not start", cfg.Name)
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.stdin.Close() // asks for a clean shutdown
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("child %s stderr:\n%s", cfg.Name, c.stderr.String())
		}
	})
	return c, ready
}

// kill ends the child with SIGKILL: no shutdown, no leader hand-over.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
}

// stop asks the child to shut down cleanly and waits until it has exited.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Fatal("child did not stop")
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("child exited with %d:\n%s", code, c.stderr.String())
	}
}

// childLastSeq asks the child for the last sequence of its own replica.
func childLastSeq(ctx context.Context, via *Node, name string) (uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	m, err := via.nc.RequestWithContext(rctx, "test."+name+".lastseq", nil)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(m.Data), 10, 64)
}

// stepdown asks the leader of a stream to hand over to the preferred node.
func stepdown(ctx context.Context, via *Node, stream, preferred string) error {
	subj := "$JS.API.STREAM.LEADER.STEPDOWN." + stream
	req := fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, preferred)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := via.nc.RequestWithContext(rctx, subj, req)
	if err != nil {
		return err
	}
	var resp struct {
		Error *struct{ Description string } `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return fmt.Errorf("%s: %s", subj, resp.Error.Description)
	}
	return nil
}

// moveLeader makes preferred the leader of stream, asking through via.
func moveLeader(t *testing.T, ctx context.Context, via *Node, stream, preferred string) {
	t.Helper()
	for range 3 {
		leader, _, err := streamLeader(ctx, via, stream)
		if err == nil && leader == preferred {
			return
		}
		if err := stepdown(ctx, via, stream, preferred); err != nil {
			t.Logf("stepdown of %s to %s: %v", stream, preferred, err)
		}
		err = poll(5*time.Second, func() error {
			leader, _, err := streamLeader(ctx, via, stream)
			if err == nil && leader != preferred {
				err = fmt.Errorf("leader is %q", leader)
			}
			return err
		})
		if err == nil {
			return
		}
	}
	t.Fatalf("%s did not become the leader of %s", preferred, stream)
}

// TestFailover runs nodes a and b in process and c in a child process, makes
// c the leader of everything, SIGKILLs it, and checks that appends go on
// within 10 s and that c, restarted, catches up.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a node")
	}
	cfgs := clusterConfigs(t, 3)
	var nodes []*Node
	c, cready := startChild(t, cfgs[2])
	nodes = startNodes(t, cfgs[:2])
	a, b := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	select {
	case err := <-cready:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("child did not start")
	}
	for _, n := range nodes {
		if err := n.EnsureStreams(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const account = "alice@example.org"
	var want []string
	appendOn := func(n *Node, data string) {
		t.Helper()
		if _, err := n.Append(ctx, account, []byte(data)); err != nil {
			t.Fatalf("append on %s: %v", n.Name(), err)
		}
		want = append(want, data)
	}
	for i := range 5 {
		appendOn(a, fmt.Sprintf("before-%d", i))
	}

	// Make c the leader of the log stream and of the session bucket: the
	// worst node to lose for appends and sessions. (Moving the JetStream
	// meta leader takes the system account, which in-process clients do not
	// have; the meta leader is logged.)
	key := Token(account) + "." + Token("phone")
	if _, err := a.PutSession(ctx, key, []byte("available")); err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{LogStream, "KV_" + SessionBucket} {
		moveLeader(t, ctx, a, stream, "c")
	}
	if jsz, err := a.srv.Jsz(nil); err == nil && jsz.Meta != nil {
		t.Logf("before the kill: meta leader %q, stream leaders c", jsz.Meta.Leader)
	}

	c.kill(t)
	start := time.Now()
	// The bound is for correctness (the survivors take writes again), not
	// a timing assertion: CI never asserts timings. The failover time is
	// logged and recorded in docs/design/cluster.md.
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	seq, err := a.Append(actx, account, []byte("after-kill"))
	cancel()
	failover := time.Since(start)
	if err != nil {
		t.Fatalf("append after killing the leader: %v (after %s)", err, failover)
	}
	want = append(want, "after-kill")
	t.Logf("failover: first append after SIGKILL of the leader took %s (seq %d)", failover.Round(time.Millisecond), seq)
	if failover > 10*time.Second {
		// nats-server's Raft election timeout is a random 4-9 s; about one
		// run in a hundred needs a second election.
		t.Logf("failover took %s: above the 10s target", failover)
	}
	appendOn(b, "on-b-while-c-down")
	waitFor(t, 15*time.Second, "session survives on b", func() error {
		v, err := b.GetSession(ctx, key)
		if err == nil && string(v) != "available" {
			err = fmt.Errorf("value %q", v)
		}
		return err
	})
	if _, err := b.PutSession(ctx, key, []byte("away")); err != nil {
		t.Fatalf("put session after the kill: %v", err)
	}
	leader, _, err := streamLeader(ctx, b, LogStream)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("new log stream leader: %s", leader)
	for _, n := range nodes {
		wantLog(t, n, account, want...)
	}

	// Restart c on the same directory and address; it must catch up.
	restart := time.Now()
	c, cready = startChild(t, cfgs[2])
	select {
	case err := <-cready:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("child did not restart")
	}
	appendOn(a, "after-restart")
	_, last, err := streamLeader(ctx, a, LogStream)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "c catches up", func() error {
		got, err := childLastSeq(ctx, a, "c")
		if err == nil && got != last {
			err = fmt.Errorf("c has %d, leader %d", got, last)
		}
		return err
	})
	t.Logf("c restarted and caught up to seq %d in %s", last, time.Since(restart).Round(time.Millisecond))

	// A planned stop (Shutdown) hands leadership over at once.
	moveLeader(t, ctx, a, LogStream, "c")
	c.stop(t)
	start = time.Now()
	appendOn(a, "after-stop")
	t.Logf("planned stop of the leader: first append took %s", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		wantLog(t, n, account, want...)
	}
}
