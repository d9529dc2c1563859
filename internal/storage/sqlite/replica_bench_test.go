package sqlite

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// createMany creates n accounts from several goroutines, so that they share
// commits.
func createMany(b *testing.B, db *DB, n int) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := db.CreateAccount(context.Background(), fmt.Sprintf("user%d", i), creds(byte(i))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkPushPending measures PushPending on a node of 10,000 accounts
// when nothing is pending (the call a node makes every second), after a
// first call that pushed them all (reported as first-push-ms).
func BenchmarkPushPending(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	const accounts = 10000
	createMany(b, db, accounts)
	c := newCluster(b, 0)
	c.addNode(b, db)
	start := time.Now()
	n, err := db.PushPending(ctx)
	if err != nil || n != accounts {
		b.Fatalf("PushPending = %d, %v; want %d", n, err, accounts)
	}
	first := time.Since(start)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if n, err := db.PushPending(ctx); err != nil || n != 0 {
			b.Fatalf("PushPending = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(first.Milliseconds()), "first-push-ms")
}

// BenchmarkStoreOfflineReplicated is BenchmarkStoreOffline on a node with
// an in-memory shared log (and its applier), to show the cost of building
// and applying entries.
func BenchmarkStoreOfflineReplicated(b *testing.B) {
	for _, par := range []int{1, 64} {
		b.Run(fmt.Sprintf("par=%d", par), func(b *testing.B) {
			benchStoreOffline(b, newCluster(b, 1).nodes[0].db, par)
		})
	}
}

// BenchmarkApplyReplicated applies the 500 entries another node wrote (one
// offline message each, 16 accounts) to a fresh node, one at a time as an
// applier waiting for each, or handed over in batches as Follow reads them:
// the batches share commits (and fsyncs).
func BenchmarkApplyReplicated(b *testing.B) {
	ctx := context.Background()
	src := newCluster(b, 1)
	users := make([]string, 16)
	for i := range users {
		users[i] = fmt.Sprintf("user%d", i)
	}
	mustCreate(b, src.nodes[0].db, users...)
	stanza := []byte(`<message from="romeo@example.net/orchard" to="juliet@example.com" type="chat"><body>Wherefore art thou?</body></message>`)
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Go(func() {
			for range 500/len(users) + 1 {
				if err := src.nodes[0].db.StoreOffline(ctx, u, stanza, 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	src.log.mu.Lock()
	var entries []Replicated
	for i, e := range src.log.entries {
		entries = append(entries, Replicated{Pos: uint64(i + 1), Data: e.data})
	}
	src.log.mu.Unlock()
	for _, size := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			var commits uint64
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				db, _ := openTest(b)
				before := db.Stats().Commits
				b.StartTimer()
				start := time.Now()
				for i := 0; i < len(entries); i += size {
					_, errs := db.ApplyReplicatedBatch(ctx, entries[i:min(i+size, len(entries))])
					for _, err := range errs {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				elapsed += time.Since(start)
				commits += db.Stats().Commits - before
			}
			n := float64(b.N * len(entries))
			b.ReportMetric(n/elapsed.Seconds(), "entries/s")
			b.ReportMetric(n/float64(max(commits, 1)), "entries/commit")
		})
	}
}
