package sqlite

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"casp3r/internal/storage"
)

// makeVersion1 writes at path a database as the program of schema version 1
// left it: the first migration only, and an account for each of users made
// the way that program made them (an account-created event, its key, the
// accounts view and the signed head).
func makeVersion1(t *testing.T, path string, users ...string) {
	t.Helper()
	r := rawDB(t, path)
	mustExec(t, r, migrations[0])
	mustExec(t, r, `PRAGMA user_version = 1`)
	for i, u := range users {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		c, err := json.Marshal(creds(byte(i)))
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(accountCreatedData{Key: pub, Credentials: c})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixNano()
		h := storage.HashEvent(nil, 1, storage.EventAccountCreated, data, now)
		mustExec(t, r, `INSERT INTO events (account, seq, type, data, time, prev, hash) VALUES (?, 1, ?, ?, ?, x'', ?)`,
			u, storage.EventAccountCreated, data, now, h[:])
		mustExec(t, r, `INSERT INTO accounts_keys (account, public, private) VALUES (?, ?, ?)`, u, []byte(pub), []byte(priv))
		mustExec(t, r, `INSERT INTO accounts (name, credentials, roster_ver, created) VALUES (?, ?, 0, ?)`, u, c, now)
		sig := ed25519.Sign(priv, storage.HeadMessage(u, 1, h[:]))
		mustExec(t, r, `INSERT INTO heads (account, seq, hash, sig) VALUES (?, 1, ?, ?)`, u, h[:], sig)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFromVersion1 opens a database of schema version 1: it is
// upgraded, its accounts are members, and everything new works on them.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "casp3r.db")
	makeVersion1(t, path, "juliet", "romeo")
	db := openPath(t, path)
	var v int
	if err := rawDB(t, path).QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if got, want := v, len(migrations); got != want {
		t.Errorf("user_version = %d, want %d", got, want)
	}
	mustVerify(t, db, "juliet", "romeo")
	if role, err := db.Role(ctx, "juliet"); err != nil || role != storage.RoleMember {
		t.Errorf("Role(juliet) = %q, %v; want member", role, err)
	}
	if _, err := db.VCard(ctx, "juliet"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("VCard(juliet) = %v, want ErrNotFound", err)
	}
	if rules, err := db.FederationRules(ctx); err != nil || len(rules) != 0 {
		t.Errorf("FederationRules = %v, %v; want none", rules, err)
	}
	// The new writes work on the old accounts, and the views still match
	// the logs.
	if err := db.SetRole(ctx, "romeo", storage.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := db.SetVCard(ctx, "juliet", []byte("<vCard xmlns='vcard-temp'/>")); err != nil {
		t.Fatal(err)
	}
	if err := db.SetFederationRule(ctx, "spam.example", storage.FederationDeny); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, db, "juliet", "romeo")
	want := dumpViews(t, path)
	if err := db.RebuildViews(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dumpViews(t, path); got != want {
		t.Errorf("views after rebuild:\n%s\nwant:\n%s", got, want)
	}
	// A second process opening the migrated file migrates nothing.
	db2 := openPath(t, path)
	if role, err := db2.Role(ctx, "romeo"); err != nil || role != storage.RoleAdmin {
		t.Errorf("Role(romeo) after reopen = %q, %v; want admin", role, err)
	}
}
