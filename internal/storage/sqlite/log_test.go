package sqlite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"casp3r/internal/storage"
)

// populate gives a few accounts some history of every event type.
func populate(t testing.TB, db *DB) {
	t.Helper()
	ctx := context.Background()
	mustCreate(t, db, "juliet", "romeo", "tybalt")
	steps := []func() error{
		func() error { return db.SetCredentials(ctx, "juliet", creds(42)) },
		func() error {
			_, err := db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net", Name: "R", Groups: []string{"Love"}, Subscription: storage.SubBoth})
			return err
		},
		func() error {
			_, err := db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "nurse@example.com", Subscription: storage.SubFrom, Ask: true})
			return err
		},
		func() error {
			_, err := db.PutRosterItem(ctx, "romeo", storage.RosterItem{JID: "juliet@example.com", PendingIn: true, Hidden: true})
			return err
		},
		func() error {
			_, err := db.DeleteRosterItem(ctx, "juliet", "nurse@example.com")
			return err
		},
		func() error { return db.StoreOffline(ctx, "juliet", []byte("<message>1</message>"), 0) },
		func() error { return db.StoreOffline(ctx, "juliet", []byte("<message>\xff</message>"), 0) },
		func() error { return db.StoreOffline(ctx, "juliet", []byte("<message>3</message>"), 0) },
		func() error { return db.StoreOffline(ctx, "romeo", []byte("<message>r</message>"), 0) },
		func() error { return db.DeleteOffline(ctx, "juliet", 7) },
		func() error { return db.StoreOffline(ctx, "tybalt", []byte("<message>t</message>"), 0) },
		func() error { return db.SetRole(ctx, "tybalt", storage.RoleAdmin) },
		func() error {
			return db.SetVCard(ctx, "tybalt", []byte("<vCard xmlns='vcard-temp'><FN>Tybalt</FN></vCard>"))
		},
		func() error { return db.DeleteAccount(ctx, "tybalt") },
		func() error { return db.SetRole(ctx, "romeo", storage.RoleLimited) },
		func() error { return db.SetRole(ctx, "romeo", storage.RoleAdmin) },
		func() error { return db.SetVCard(ctx, "romeo", []byte("<vCard xmlns='vcard-temp'><FN>R</FN></vCard>")) },
		func() error {
			return db.SetVCard(ctx, "romeo", []byte("<vCard xmlns='vcard-temp'><FN>Romeo \xff</FN></vCard>"))
		},
		func() error { return db.SetFederationRule(ctx, "capulet.example", storage.FederationDeny) },
		func() error { return db.SetFederationRule(ctx, "verona.example", storage.FederationDeny) },
		func() error { return db.SetFederationRule(ctx, "verona.example", storage.FederationAllow) },
		func() error { return db.SetFederationRule(ctx, "mantua.example", storage.FederationAllow) },
		func() error { return db.RemoveFederationRule(ctx, "mantua.example") },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
}

func TestLog(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	populate(t, db)
	evs, err := db.Log(ctx, "juliet", 0)
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []string{
		storage.EventAccountCreated, storage.EventCredentialsSet,
		storage.EventRosterSet, storage.EventRosterSet, storage.EventRosterRemoved,
		storage.EventOfflineStored, storage.EventOfflineStored, storage.EventOfflineStored,
		storage.EventOfflineDeleted,
	}
	var gotTypes []string
	var prev []byte
	for i, e := range evs {
		gotTypes = append(gotTypes, e.Type)
		if got, want := e.Seq, uint64(i+1); got != want {
			t.Errorf("event %d: seq %d", want, got)
		}
		if e.Account != "juliet" {
			t.Errorf("event %d: account %q", e.Seq, e.Account)
		}
		if !bytes.Equal(e.Prev, prev) {
			t.Errorf("event %d: prev does not link", e.Seq)
		}
		if h := e.ComputeHash(); !bytes.Equal(h[:], e.Hash) {
			t.Errorf("event %d: hash mismatch", e.Seq)
		}
		prev = e.Hash
	}
	if !reflect.DeepEqual(gotTypes, wantTypes) {
		t.Errorf("types = %v\nwant %v", gotTypes, wantTypes)
	}
	tail, err := db.Log(ctx, "juliet", 7)
	if err != nil || len(tail) != 2 || tail[0].Seq != 8 {
		t.Errorf("Log(after 7) = %d events starting %v, %v", len(tail), tail, err)
	}
	// The head is the last event, signed by the key of account-created.
	h, err := db.Head(ctx, "juliet")
	if err != nil {
		t.Fatal(err)
	}
	if h.Seq != 9 || !bytes.Equal(h.Hash, evs[8].Hash) {
		t.Errorf("Head = %d %x, want 9 %x", h.Seq, h.Hash, evs[8].Hash)
	}
	var d accountCreatedData
	if err := json.Unmarshal(evs[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(d.Key, storage.HeadMessage("juliet", h.Seq, h.Hash), h.Sig) {
		t.Error("head signature does not verify with the logged key")
	}
	if ed25519.Verify(d.Key, storage.HeadMessage("romeo", h.Seq, h.Hash), h.Sig) {
		t.Error("head signature verifies for another account")
	}
	mustVerify(t, db, "juliet", "romeo", "tybalt")
	if _, err := db.Head(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Head(nobody) = %v, want ErrNotFound", err)
	}
}

func TestVerifyLogDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, r *sql.DB)
	}{
		{"event data changed", func(t *testing.T, r *sql.DB) {
			mustExec(t, r, `UPDATE events SET data = '{"stanza":"<message>evil</message>"}' WHERE account = 'juliet' AND seq = 6`)
		}},
		{"event time changed", func(t *testing.T, r *sql.DB) {
			mustExec(t, r, `UPDATE events SET time = time + 1 WHERE account = 'juliet' AND seq = 3`)
		}},
		{"event removed in the middle", func(t *testing.T, r *sql.DB) {
			mustExec(t, r, `DELETE FROM events WHERE account = 'juliet' AND seq = 4`)
		}},
		{"last event removed", func(t *testing.T, r *sql.DB) {
			mustExec(t, r, `DELETE FROM events WHERE account = 'juliet' AND seq = 9`)
		}},
		{"event rehashed but not relinked", func(t *testing.T, r *sql.DB) {
			var e storage.Event
			var n int64
			if err := r.QueryRow(`SELECT seq, type, data, time, prev FROM events WHERE account = 'juliet' AND seq = 5`).
				Scan(&e.Seq, &e.Type, &e.Data, &n, &e.Prev); err != nil {
				t.Fatal(err)
			}
			e.Type = storage.EventRosterSet
			e.Data = []byte(`{"jid":"evil@example.org","subscription":"both"}`)
			h := storage.HashEvent(e.Prev, e.Seq, e.Type, e.Data, n)
			mustExec(t, r, `UPDATE events SET type = ?, data = ?, hash = ? WHERE account = 'juliet' AND seq = 5`, e.Type, e.Data, h[:])
		}},
		{"head signature changed", func(t *testing.T, r *sql.DB) {
			mustExec(t, r, `UPDATE heads SET sig = zeroblob(64) WHERE account = 'juliet'`)
		}},
		{"head removed", func(t *testing.T, r *sql.DB) {
			mustExec(t, r, `DELETE FROM heads WHERE account = 'juliet'`)
		}},
		{"whole log rewritten and signed with another key", func(t *testing.T, r *sql.DB) {
			// Replace juliet's log by romeo's: the hashes link, but the
			// head is signed for romeo.
			mustExec(t, r, `DELETE FROM events WHERE account = 'juliet'`)
			mustExec(t, r, `INSERT INTO events SELECT 'juliet', seq, type, data, time, prev, hash FROM events WHERE account = 'romeo'`)
			mustExec(t, r, `UPDATE heads SET (seq, hash, sig) = (SELECT seq, hash, sig FROM heads WHERE account = 'romeo') WHERE account = 'juliet'`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db, path := openTest(t)
			populate(t, db)
			mustVerify(t, db, "juliet", "romeo")
			tt.tamper(t, rawDB(t, path))
			if err := db.VerifyLog(ctx, "juliet"); !errors.Is(err, storage.ErrCorrupt) {
				t.Errorf("VerifyLog = %v, want ErrCorrupt", err)
			}
			mustVerify(t, db, "romeo")
		})
	}
}

func TestRebuildViews(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	populate(t, db)
	want := dumpViews(t, path)
	// Rebuilding intact views changes nothing.
	if err := db.RebuildViews(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dumpViews(t, path); got != want {
		t.Fatalf("views after rebuild:\n%s\nwant:\n%s", got, want)
	}
	// Damage the views, then rebuild them from the logs.
	r := rawDB(t, path)
	mustExec(t, r, `DELETE FROM roster WHERE account = 'juliet'`)
	mustExec(t, r, `UPDATE accounts SET credentials = '{}', roster_ver = 77`)
	mustExec(t, r, `DELETE FROM offline WHERE account = 'romeo'`)
	mustExec(t, r, `INSERT INTO offline (account, id, stanza, stored) VALUES ('juliet', 99, 'x', 0)`)
	mustExec(t, r, `INSERT INTO accounts (name, credentials, roster_ver, created) VALUES ('ghost', '{}', 0, 0)`)
	mustExec(t, r, `UPDATE accounts SET role = 'limited' WHERE name = 'juliet'`)
	mustExec(t, r, `UPDATE accounts SET role = 'member' WHERE name = 'romeo'`)
	mustExec(t, r, `DELETE FROM vcards`)
	mustExec(t, r, `INSERT INTO vcards (account, xml) VALUES ('juliet', 'x')`)
	mustExec(t, r, `DELETE FROM federation_domains WHERE domain = 'capulet.example'`)
	mustExec(t, r, `UPDATE federation_domains SET action = 'deny' WHERE domain = 'verona.example'`)
	mustExec(t, r, `INSERT INTO federation_domains (domain, action) VALUES ('mantua.example', 'allow')`)
	if got := dumpViews(t, path); got == want {
		t.Fatal("damaging the views changed nothing")
	}
	if err := db.RebuildViews(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dumpViews(t, path); got != want {
		t.Fatalf("views after rebuild:\n%s\nwant:\n%s", got, want)
	}
	// And the public API agrees.
	items, ver, err := db.Roster(ctx, "juliet")
	if err != nil || len(items) != 1 || ver != "5" {
		t.Errorf("Roster(juliet) = %v, %q, %v", items, ver, err)
	}
	if c, err := db.Credentials(ctx, "juliet"); err != nil || !reflect.DeepEqual(c, creds(42)) {
		t.Errorf("Credentials(juliet) = %+v, %v", c, err)
	}
	msgs, err := db.OfflineMessages(ctx, "juliet")
	if err != nil || len(msgs) != 2 || string(msgs[1].Stanza) != "<message>3</message>" {
		t.Errorf("OfflineMessages(juliet) = %v, %v", msgs, err)
	}
	if role, err := db.Role(ctx, "romeo"); err != nil || role != storage.RoleAdmin {
		t.Errorf("Role(romeo) = %q, %v; want admin", role, err)
	}
	if role, err := db.Role(ctx, "juliet"); err != nil || role != storage.RoleMember {
		t.Errorf("Role(juliet) = %q, %v; want member", role, err)
	}
	if x, err := db.VCard(ctx, "romeo"); err != nil || string(x) != "<vCard xmlns='vcard-temp'><FN>Romeo \xff</FN></vCard>" {
		t.Errorf("VCard(romeo) = %q, %v", x, err)
	}
	if _, err := db.VCard(ctx, "juliet"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("VCard(juliet) = %v, want ErrNotFound", err)
	}
	rules, err := db.FederationRules(ctx)
	if want := map[string]string{"capulet.example": "deny", "verona.example": "allow"}; err != nil || !reflect.DeepEqual(rules, want) {
		t.Errorf("FederationRules = %v, %v; want %v", rules, err, want)
	}
	mustVerify(t, db, "juliet", "romeo", "tybalt")
	if err := db.VerifyServerLog(ctx, storage.ServerLogFederation); err != nil {
		t.Error(err)
	}
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	populate(t, db)
	dst := filepath.Join(t.TempDir(), "backup.db")
	if err := db.Backup(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(ctx, dst); err == nil {
		t.Error("Backup over an existing file succeeded")
	}
	// The original keeps working.
	if err := db.StoreOffline(ctx, "juliet", []byte("<late/>"), 0); err != nil {
		t.Fatal(err)
	}
	b := openPath(t, dst)
	mustVerify(t, b, "juliet", "romeo", "tybalt")
	if got, want := dumpViews(t, dst), dumpViews(t, path); got == want {
		t.Error("backup has the message stored after it")
	}
	if err := db.DeleteOffline(ctx, "juliet", 10); err != nil {
		t.Fatal(err)
	}
	if err := db.RebuildViews(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.RebuildViews(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Accounts(ctx)
	want, _ := db.Accounts(ctx)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backup accounts = %v, want %v", got, want)
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	r := rawDB(t, path)
	var v int
	if err := r.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if got, want := v, len(migrations); got != want {
		t.Errorf("user_version = %d, want %d", got, want)
	}
	var mode string
	if err := r.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	// The writer's connection commits with fsync and waits for locks.
	var syncMode, busy int
	err := db.write(ctx, func(t *wtx) error {
		if err := t.tx.QueryRowContext(t.ctx, `PRAGMA synchronous`).Scan(&syncMode); err != nil {
			return err
		}
		return t.tx.QueryRowContext(t.ctx, `PRAGMA busy_timeout`).Scan(&busy)
	})
	if err != nil {
		t.Fatal(err)
	}
	if syncMode != 2 || busy != busyTimeoutMS {
		t.Errorf("synchronous = %d, busy_timeout = %d; want 2 (FULL), %d", syncMode, busy, busyTimeoutMS)
	}
	mustCreate(t, db, "juliet")
	// Reopening an up-to-date file migrates nothing and keeps the data.
	db2 := openPath(t, path)
	if ok, err := db2.AccountExists(ctx, "juliet"); err != nil || !ok {
		t.Errorf("AccountExists after reopen = %v, %v", ok, err)
	}
	// A file from a newer program is refused.
	mustExec(t, r, `PRAGMA user_version = 1000`)
	if db3, err := Open(ctx, path, nil); err == nil {
		db3.Close()
		t.Error("Open of a newer schema succeeded")
	}
}

// TestBackupWhileWriting takes a backup while messages are being stored: the
// copy is one consistent snapshot, so its logs verify and its views match its
// logs.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	populate(t, db)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stored atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				user := []string{"juliet", "romeo"}[w%2]
				if err := db.StoreOffline(ctx, user, []byte(fmt.Sprintf("<m w='%d' i='%d'/>", w, i)), 0); err != nil {
					t.Error(err)
					return
				}
				stored.Add(1)
			}
		})
	}
	waitFor(t, "writes to start", func() bool { return stored.Load() > 20 })
	dst := filepath.Join(t.TempDir(), "backup.db")
	err := db.Backup(ctx, dst)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	b := openPath(t, dst)
	mustVerify(t, b, "juliet", "romeo", "tybalt")
	want := dumpViews(t, dst)
	if err := b.RebuildViews(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dumpViews(t, dst); got != want {
		t.Error("views of the backup do not match its logs")
	}
	t.Logf("%d messages stored during the backup", stored.Load())
}
