package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"casp3r/internal/storage"
)

// openTest opens a store in a new temporary directory and closes it at the
// end of the test.
func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "casp3r.db")
	db := openPath(t, path)
	return db, path
}

func openPath(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// rawDB opens a plain connection to the file, for a test to tamper with the
// tables or hold locks as another process would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	r, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	r.SetMaxOpenConns(1)
	t.Cleanup(func() { r.Close() })
	return r
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func creds(n byte) storage.Credentials {
	return storage.Credentials{
		SHA1:   storage.ScramKeys{Salt: []byte{n, 1}, Iters: 4096, StoredKey: []byte{n, 2}, ServerKey: []byte{n, 3}},
		SHA256: storage.ScramKeys{Salt: []byte{n, 4}, Iters: 8192, StoredKey: []byte{n, 5}, ServerKey: []byte{n, 6}},
	}
}

func mustCreate(t testing.TB, db *DB, users ...string) {
	t.Helper()
	for i, u := range users {
		if err := db.CreateAccount(context.Background(), u, creds(byte(i))); err != nil {
			t.Fatalf("CreateAccount(%q): %v", u, err)
		}
	}
}

func mustVerify(t testing.TB, db *DB, users ...string) {
	t.Helper()
	for _, u := range users {
		if err := db.VerifyLog(context.Background(), u); err != nil {
			t.Fatalf("VerifyLog(%q): %v", u, err)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// dumpViews returns the content of every view table as text, for comparing
// views before and after a rebuild.
func dumpViews(t testing.TB, path string) string {
	t.Helper()
	r := rawDB(t, path)
	var b strings.Builder
	for _, q := range []string{
		`SELECT name, hex(credentials), roster_ver, created, role FROM accounts ORDER BY name`,
		`SELECT account, jid, name, coalesce(groups, 'NULL'), subscription, ask, pending_in, approved, hidden FROM roster ORDER BY account, jid`,
		`SELECT account, id, hex(stanza), stored FROM offline ORDER BY account, id`,
		`SELECT account, hex(xml) FROM vcards ORDER BY account`,
		`SELECT domain, action FROM federation_domains ORDER BY domain`,
	} {
		rows, err := r.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		fmt.Fprintf(&b, "%s\n", q)
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, vals...)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}
