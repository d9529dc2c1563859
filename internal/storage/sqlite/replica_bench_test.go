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
