package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"casp3r/internal/storage"
)

func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	before := db.Stats()
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := db.StoreOffline(ctx, "juliet", []byte(fmt.Sprintf("<message id='%d'/>", i)), 0); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("StoreOffline: %v", err)
	}
	after := db.Stats()
	commits, requests := after.Commits-before.Commits, after.Requests-before.Requests
	t.Logf("%d requests in %d commits (%.1f per commit)", requests, commits, float64(requests)/float64(commits))
	if requests != n {
		t.Errorf("requests = %d, want %d", requests, n)
	}
	if commits >= n {
		t.Errorf("commits = %d for %d requests: no batch formed", commits, n)
	}
	msgs, err := db.OfflineMessages(ctx, "juliet")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(msgs); got != n {
		t.Fatalf("len(OfflineMessages) = %d, want %d", got, n)
	}
	seen := make(map[string]bool)
	for _, m := range msgs {
		seen[string(m.Stanza)] = true
	}
	for i := range n {
		if s := fmt.Sprintf("<message id='%d'/>", i); !seen[s] {
			t.Errorf("message %s missing", s)
		}
	}
	mustVerify(t, db, "juliet")
}

// TestBatchIsolation checks that a request failing inside a batch is rolled
// back alone: the requests around it in the same transaction commit.
func TestBatchIsolation(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	mustCreate(t, db, "juliet")

	// Hold the write lock as another process would, so that requests queue
	// up while the writer waits in BEGIN IMMEDIATE.
	lock := rawDB(t, path)
	conn, err := lock.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}

	before := db.Stats()
	received := db.received.Load()
	first := make(chan error, 1)
	go func() { first <- db.StoreOffline(ctx, "juliet", []byte("<first/>"), 0) }()
	waitFor(t, "the writer to take the first request", func() bool { return db.received.Load() == received+1 })

	type result struct {
		name string
		err  error
	}
	results := make(chan result, 4)
	do := func(name string, f func() error) { go func() { results <- result{name, f()} }() }
	do("create romeo", func() error { return db.CreateAccount(ctx, "romeo", creds(1)) })
	do("create juliet", func() error { return db.CreateAccount(ctx, "juliet", creds(2)) })
	do("offline over quota", func() error { return db.StoreOffline(ctx, "juliet", []byte("<over/>"), 1) })
	do("roster", func() error {
		_, err := db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net"})
		return err
	})
	waitFor(t, "4 more requests", func() bool { return db.received.Load()-received+uint64(len(db.reqs)) == 5 })
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}

	if err := <-first; err != nil {
		t.Fatalf("first StoreOffline: %v", err)
	}
	want := map[string]error{
		"create romeo":       nil,
		"create juliet":      storage.ErrExists,
		"offline over quota": storage.ErrQuotaExceeded,
		"roster":             nil,
	}
	for range want {
		r := <-results
		if w := want[r.name]; !errors.Is(r.err, w) || (w == nil) != (r.err == nil) {
			t.Errorf("%s: err = %v, want %v", r.name, r.err, w)
		}
	}
	if got := db.Stats().Commits - before.Commits; got != 2 {
		t.Errorf("commits = %d, want 2 (the first request, then one batch of 4)", got)
	}
	if ok, _ := db.AccountExists(ctx, "romeo"); !ok {
		t.Error("romeo was not created")
	}
	if c, _ := db.Credentials(ctx, "juliet"); c.SHA1.Salt[0] != 0 {
		t.Error("juliet's credentials were replaced")
	}
	if msgs, _ := db.OfflineMessages(ctx, "juliet"); len(msgs) != 1 {
		t.Errorf("juliet has %d offline messages, want 1", len(msgs))
	}
	if _, err := db.RosterItem(ctx, "juliet", "romeo@example.net"); err != nil {
		t.Errorf("RosterItem: %v", err)
	}
	mustVerify(t, db, "juliet", "romeo")
}

// TestCrossConnection opens the same file twice, as the server and the
// command line tool do from two processes, and interleaves writes to one
// account from both.
func TestCrossConnection(t *testing.T) {
	ctx := context.Background()
	server, path := openTest(t)
	cli := openPath(t, path)

	if err := cli.CreateAccount(ctx, "juliet", creds(1)); err != nil {
		t.Fatal(err)
	}
	// The server sees the account the tool created.
	if ok, err := server.AccountExists(ctx, "juliet"); err != nil || !ok {
		t.Fatalf("server AccountExists = %v, %v", ok, err)
	}
	if err := server.CreateAccount(ctx, "juliet", creds(2)); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("server CreateAccount = %v, want ErrExists", err)
	}

	const perSide = 50
	var wg sync.WaitGroup
	errs := make(chan error, 4*perSide)
	for side, db := range []*DB{server, cli} {
		for i := range perSide {
			wg.Go(func() {
				stanza := fmt.Sprintf("<message id='%d-%d'/>", side, i)
				if err := db.StoreOffline(ctx, "juliet", []byte(stanza), 0); err != nil {
					errs <- err
				}
				jid := fmt.Sprintf("c%d-%d@example.net", side, i)
				if _, err := db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: jid}); err != nil {
					errs <- err
				}
			})
		}
		wg.Go(func() {
			if err := db.SetCredentials(ctx, "juliet", creds(byte(10+side))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Both see the same log, which verifies, and the same views.
	wantEvents := 1 + 2*(2*perSide+1)
	for name, db := range map[string]*DB{"server": server, "cli": cli} {
		evs, err := db.Log(ctx, "juliet", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(evs); got != wantEvents {
			t.Errorf("%s: %d events, want %d", name, got, wantEvents)
		}
		mustVerify(t, db, "juliet")
		items, ver, err := db.Roster(ctx, "juliet")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(items); got != 2*perSide {
			t.Errorf("%s: %d roster items, want %d", name, got, 2*perSide)
		}
		// The roster version is the seq of the last roster event.
		var last uint64
		for _, e := range evs {
			if e.Type == storage.EventRosterSet {
				last = e.Seq
			}
		}
		if want := strconv.FormatUint(last, 10); ver != want {
			t.Errorf("%s: roster ver = %q, want %q", name, ver, want)
		}
		msgs, err := db.OfflineMessages(ctx, "juliet")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(msgs); got != 2*perSide {
			t.Errorf("%s: %d offline messages, want %d", name, got, 2*perSide)
		}
	}
	// Quotas are counted in the write transaction, across processes.
	if err := cli.StoreOffline(ctx, "juliet", []byte("<m/>"), 2*perSide); !errors.Is(err, storage.ErrQuotaExceeded) {
		t.Errorf("cli StoreOffline over quota = %v, want ErrQuotaExceeded", err)
	}
	if err := server.DeleteAccount(ctx, "juliet"); err != nil {
		t.Fatal(err)
	}
	if err := cli.DeleteAccount(ctx, "juliet"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("cli DeleteAccount after server's = %v, want ErrNotFound", err)
	}
	mustVerify(t, cli, "juliet")
}

func TestCanceledContext(t *testing.T) {
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.StoreOffline(ctx, "juliet", []byte("<m/>"), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("StoreOffline with canceled ctx = %v, want context.Canceled", err)
	}
	if msgs, _ := db.OfflineMessages(context.Background(), "juliet"); len(msgs) != 0 {
		t.Errorf("message stored despite canceled ctx")
	}
}

func TestCloseDrains(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	mustCreate(t, db, "juliet")
	const n = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for i := range n {
		wg.Go(func() {
			err := db.StoreOffline(ctx, "juliet", []byte(fmt.Sprintf("<m id='%d'/>", i)), 0)
			if err == nil {
				mu.Lock()
				acked++
				mu.Unlock()
			} else if !errors.Is(err, storage.ErrClosed) {
				t.Errorf("StoreOffline: %v", err)
			}
		})
	}
	waitFor(t, "some acks", func() bool { mu.Lock(); defer mu.Unlock(); return acked > 0 })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	db2 := openPath(t, path)
	msgs, err := db2.OfflineMessages(ctx, "juliet")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(msgs); got != acked {
		t.Errorf("%d messages stored, %d acknowledged", got, acked)
	}
	mustVerify(t, db2, "juliet")
}

// TestConnPragmas: every connection, the writer's and each of the read
// pool's, runs with the settings durability and memory rely on.
func TestConnPragmas(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"cache_size", strconv.Itoa(-cacheKB)},
		{"busy_timeout", strconv.Itoa(busyTimeoutMS)},
	}
	for _, pool := range []struct {
		name string
		db   *sql.DB
		n    int
	}{{"writer", db.w, 1}, {"reader", db.r, readConns}} {
		// Hold n connections at once, so that each of the pool's is asked.
		var conns []*sql.Conn
		for range pool.n {
			c, err := pool.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			for _, tt := range tests {
				var got string
				if err := c.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
					t.Fatalf("%s %d: PRAGMA %s: %v", pool.name, i, tt.pragma, err)
				}
				if got != tt.want {
					t.Errorf("%s connection %d: %s = %s, want %s", pool.name, i, tt.pragma, got, tt.want)
				}
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}
}
