package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"casp3r/internal/storage"
)

// memLog is an in-memory shared log for tests: the Replicator of every node
// of a test cluster, as the JetStream glue is in a real one. Entries are
// numbered from 1; each node has an applier goroutine that gives them, in
// order, to its DB's ApplyReplicated.
type memLog struct {
	mu        sync.Mutex
	entries   []memEntry        // entry i is at position i+1
	last      map[string]uint64 // position of each key's last entry
	changed   chan struct{}     // closed and replaced on every change
	fail      func(key string) error
	calls     int // Replicate calls
	conflicts int // Replicate calls refused with ErrConflict
}

type memEntry struct {
	key  string
	data []byte
}

// memNode is one node of a test cluster: its DB and its applier.
type memNode struct {
	log     *memLog
	db      *DB
	path    string
	applied uint64        // position of the last entry applied; guarded by log.mu
	errs    []error       // ApplyReplicated errors; guarded by log.mu
	got     []Applied     // ApplyReplicated results, in order; guarded by log.mu
	gate    chan struct{} // when not nil, the applier waits for it to close; guarded by log.mu
}

func newMemLog() *memLog {
	return &memLog{last: make(map[string]uint64), changed: make(chan struct{})}
}

// notify wakes the waiters; l.mu is held.
func (l *memLog) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// inject appends data as the entry of key without any check, as a forger
// with access to the shared log would, and returns its position.
func (l *memLog) inject(key string, data []byte) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, memEntry{key, bytes.Clone(data)})
	pos := uint64(len(l.entries))
	l.last[key] = pos
	l.notify()
	return pos
}

// counts returns the number of Replicate calls and of conflicts so far.
func (l *memLog) counts() (calls, conflicts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls, l.conflicts
}

func (l *memLog) end() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.entries))
}

func (n *memNode) Replicate(ctx context.Context, key string, last uint64, entry []byte) (uint64, error) {
	l := n.log
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.fail != nil {
		if err := l.fail(key); err != nil {
			return 0, err
		}
	}
	if cur := l.last[key]; cur != last {
		l.conflicts++
		return 0, fmt.Errorf("%s is at %d, not %d: %w", key, cur, last, storage.ErrConflict)
	}
	l.entries = append(l.entries, memEntry{key, bytes.Clone(entry)})
	pos := uint64(len(l.entries))
	l.last[key] = pos
	l.notify()
	return pos, nil
}

func (n *memNode) Sync(ctx context.Context) error {
	return n.waitApplied(ctx, n.log.end())
}

func (n *memNode) waitApplied(ctx context.Context, end uint64) error {
	l := n.log
	for {
		l.mu.Lock()
		if n.applied >= end {
			l.mu.Unlock()
			return nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run is the applier of n: it applies the shared log to n.db in order until
// ctx is done.
func (n *memNode) run(ctx context.Context) {
	l := n.log
	for {
		l.mu.Lock()
		next := n.applied + 1
		gate, ch := n.gate, l.changed
		if next > uint64(len(l.entries)) || gate != nil {
			l.mu.Unlock()
			select {
			case <-ch:
			case <-gate:
				l.mu.Lock()
				if n.gate == gate {
					n.gate = nil
				}
				l.mu.Unlock()
			case <-ctx.Done():
				return
			}
			continue
		}
		e := l.entries[next-1]
		l.mu.Unlock()
		got, err := n.db.ApplyReplicated(ctx, next, e.data)
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		if err != nil {
			n.errs = append(n.errs, err)
		}
		n.got = append(n.got, got)
		n.applied = next
		l.notify()
		l.mu.Unlock()
	}
}

// pause stops n's applier before its next entry, until the returned func is
// called.
func (n *memNode) pause() (resume func()) {
	g := make(chan struct{})
	n.log.mu.Lock()
	n.gate = g
	n.log.mu.Unlock()
	return func() { close(g) }
}

func (n *memNode) applyErrs() []error {
	n.log.mu.Lock()
	defer n.log.mu.Unlock()
	return append([]error(nil), n.errs...)
}

// testCluster is a shared log and its nodes.
type testCluster struct {
	log   *memLog
	nodes []*memNode
}

// newCluster opens n DBs in t's temporary directory, each with a replicator
// on one shared log and an applier. They stop at the end of the test.
func newCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	c := &testCluster{log: newMemLog()}
	for range n {
		c.addNode(t, openPath(t, filepath.Join(t.TempDir(), "casp3r.db")))
	}
	return c
}

// addNode makes db a node of c.
func (c *testCluster) addNode(t testing.TB, db *DB) *memNode {
	t.Helper()
	nd := &memNode{log: c.log, db: db, path: db.path}
	db.SetReplicator(nd)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { nd.run(ctx) })
	t.Cleanup(func() { // before the DB closes (cleanups run last first)
		cancel()
		wg.Wait()
	})
	c.nodes = append(c.nodes, nd)
	return nd
}

// sync waits until every node has applied the whole shared log.
func (c *testCluster) sync(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, nd := range c.nodes {
		if err := nd.Sync(ctx); err != nil {
			t.Fatalf("node %d: Sync: %v", i+1, err)
		}
	}
}

// same syncs c and checks that every node has the views of the first and no
// applier error.
func (c *testCluster) same(t testing.TB) string {
	t.Helper()
	c.sync(t)
	var want string
	for i, nd := range c.nodes {
		for _, err := range nd.applyErrs() {
			t.Errorf("node %d: ApplyReplicated: %v", i+1, err)
		}
		got := digest(t, nd.db)
		if i == 0 {
			want = got
			continue
		}
		if got != want {
			t.Fatalf("node %d: ViewsDigest differs from node 1's\nnode 1:\n%s\nnode %d:\n%s",
				i+1, dumpViews(t, c.nodes[0].path), i+1, dumpViews(t, nd.path))
		}
	}
	return want
}

func digest(t testing.TB, db *DB) string {
	t.Helper()
	d, err := db.ViewsDigest(context.Background())
	if err != nil {
		t.Fatalf("ViewsDigest: %v", err)
	}
	return d
}
