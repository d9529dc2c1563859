package sqlite

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"casp3r/internal/storage"
)

// BenchmarkStoreOffline stores offline messages from many goroutines
// (GOMAXPROCS × parallelism) to 64 accounts and reports the throughput and
// how many requests shared each commit (each commit is one fsync).
func BenchmarkStoreOffline(b *testing.B) {
	for _, par := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("par=%d", par), func(b *testing.B) {
			db, _ := openTest(b)
			benchStoreOffline(b, db, par)
		})
	}
}

// benchStoreOffline stores offline messages for 64 accounts from par
// goroutines per CPU and reports ops/s and requests per commit.
func benchStoreOffline(b *testing.B, db *DB, par int) {
	ctx := context.Background()
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
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		user := users[next.Add(1)%accounts]
		for pb.Next() {
			if err := db.StoreOffline(ctx, user, stanza, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	commits := db.Stats().Commits - before.Commits
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(commits), "commits")
	b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "reqs/commit")
}

// BenchmarkRoster reads a roster of 100 items.
func BenchmarkRoster(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	mustCreate(b, db, "juliet")
	for i := range 100 {
		if _, err := db.PutRosterItem(ctx, "juliet", rosterItem(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		items, _, err := db.Roster(ctx, "juliet")
		if err != nil || len(items) != 100 {
			b.Fatal(len(items), err)
		}
	}
}

func rosterItem(i int) storage.RosterItem {
	return storage.RosterItem{JID: fmt.Sprintf("contact%d@example.net", i), Name: fmt.Sprintf("Contact %d", i), Groups: []string{"Friends"}, Subscription: storage.SubBoth}
}
