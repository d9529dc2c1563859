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
			ctx := context.Background()
			c := newCluster(b, 1)
			db := c.nodes[0].db
			const accounts = 64
			users := make([]string, accounts)
			for i := range users {
				users[i] = fmt.Sprintf("user%d", i)
			}
			mustCreate(b, db, users...)
			stanza := []byte(`<message from="romeo@example.net/orchard" to="juliet@example.com" type="chat" id="a1b2c3"><body>Wherefore art thou?</body></message>`)
			var next atomic.Uint64
			before := db.Stats()
			b.SetParallelism(par)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				user := users[next.Add(1)%accounts]
				for pb.Next() {
					if err := db.StoreOffline(ctx, user, stanza, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			commits := db.Stats().Commits - before.Commits
			b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "reqs/commit")
		})
	}
}
