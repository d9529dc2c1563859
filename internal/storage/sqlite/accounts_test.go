package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"casp3r/internal/storage"
)

func TestCreateAccount(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	tests := []struct {
		name string
		user string
		want error // errors.Is target; nil for success
	}{
		{"new", "romeo", nil},
		{"exists", "juliet", storage.ErrExists},
		{"again after create", "romeo", storage.ErrExists},
		{"unicode", "ὀδυσσεύς", nil},
		{"empty", "", errEmptyUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.CreateAccount(ctx, tt.user, creds(7))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CreateAccount(%q) = %v, want %v", tt.user, err, tt.want)
			}
			if tt.want != nil {
				return
			}
			got, err := db.Credentials(ctx, tt.user)
			if err != nil {
				t.Fatalf("Credentials: %v", err)
			}
			if want := creds(7); !reflect.DeepEqual(got, want) {
				t.Errorf("Credentials = %+v, want %+v", got, want)
			}
			mustVerify(t, db, tt.user)
		})
	}
	// The failed creation of juliet left her credentials alone.
	if got, err := db.Credentials(ctx, "juliet"); err != nil || !reflect.DeepEqual(got, creds(0)) {
		t.Errorf("Credentials(juliet) = %+v, %v; want %+v", got, err, creds(0))
	}
}

func TestDeleteAccount(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet", "romeo")
	if _, err := db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net"}); err != nil {
		t.Fatal(err)
	}
	if err := db.StoreOffline(ctx, "juliet", []byte("<message/>"), 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user string
		want error
	}{
		{"juliet", nil},
		{"juliet", storage.ErrNotFound},
		{"nobody", storage.ErrNotFound},
	}
	for _, tt := range tests {
		if err := db.DeleteAccount(ctx, tt.user); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("DeleteAccount(%q) = %v, want %v", tt.user, err, tt.want)
		}
	}
	if ok, err := db.AccountExists(ctx, "juliet"); err != nil || ok {
		t.Errorf("AccountExists(juliet) = %v, %v; want false", ok, err)
	}
	if _, err := db.Credentials(ctx, "juliet"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Credentials(juliet) err = %v, want ErrNotFound", err)
	}
	if _, _, err := db.Roster(ctx, "juliet"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Roster(juliet) err = %v, want ErrNotFound", err)
	}
	if msgs, err := db.OfflineMessages(ctx, "juliet"); err != nil || len(msgs) != 0 {
		t.Errorf("OfflineMessages(juliet) = %v, %v; want none", msgs, err)
	}
	// The log is kept, ends with account-deleted, and still verifies.
	evs, err := db.Log(ctx, "juliet", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(evs), 4; got != want {
		t.Fatalf("len(Log) = %d, want %d", got, want)
	}
	if got, want := evs[3].Type, storage.EventAccountDeleted; got != want {
		t.Errorf("last event = %q, want %q", got, want)
	}
	mustVerify(t, db, "juliet", "romeo")
	if got, err := db.Accounts(ctx); err != nil || !reflect.DeepEqual(got, []string{"romeo"}) {
		t.Errorf("Accounts = %v, %v; want [romeo]", got, err)
	}
}

func TestRecreateAccount(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	if err := db.StoreOffline(ctx, "juliet", []byte("<message>old</message>"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "nurse@example.net"}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAccount(ctx, "juliet"); err != nil {
		t.Fatal(err)
	}
	oldHead, err := db.Head(ctx, "juliet")
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, "juliet")
	// The log continues with a new key; the new account starts empty.
	evs, err := db.Log(ctx, "juliet", oldHead.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != storage.EventAccountCreated || evs[0].Seq != oldHead.Seq+1 {
		t.Fatalf("Log after recreation = %+v", evs)
	}
	mustVerify(t, db, "juliet")
	items, ver, err := db.Roster(ctx, "juliet")
	if err != nil || len(items) != 0 || ver != "0" {
		t.Errorf("Roster = %v, %q, %v; want empty, \"0\"", items, ver, err)
	}
	if msgs, err := db.OfflineMessages(ctx, "juliet"); err != nil || len(msgs) != 0 {
		t.Errorf("OfflineMessages = %v, %v; want none", msgs, err)
	}
}

func TestSetCredentials(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	tests := []struct {
		user string
		c    storage.Credentials
		want error
	}{
		{"juliet", creds(9), nil},
		{"juliet", storage.Credentials{}, nil},
		{"juliet", creds(3), nil},
		{"nobody", creds(1), storage.ErrNotFound},
	}
	for _, tt := range tests {
		err := db.SetCredentials(ctx, tt.user, tt.c)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Fatalf("SetCredentials(%q) = %v, want %v", tt.user, err, tt.want)
		}
		if err != nil {
			continue
		}
		got, err := db.Credentials(ctx, tt.user)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.c) {
			t.Errorf("Credentials = %+v, want %+v", got, tt.c)
		}
	}
	if ok, err := db.AccountExists(ctx, "nobody"); err != nil || ok {
		t.Errorf("AccountExists(nobody) = %v, %v", ok, err)
	}
	mustVerify(t, db, "juliet")
	if _, err := db.Log(ctx, "nobody", 0); err != nil {
		t.Errorf("Log(nobody): %v", err)
	}
	if err := db.VerifyLog(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("VerifyLog(nobody) = %v, want ErrNotFound", err)
	}
}

func TestAccountsSortedAndPersistent(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	if got, err := db.Accounts(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Accounts of empty store = %v, %v", got, err)
	}
	mustCreate(t, db, "romeo", "benvolio", "juliet", "mercutio")
	want := []string{"benvolio", "juliet", "mercutio", "romeo"}
	if got, err := db.Accounts(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Accounts = %v, %v; want %v", got, err, want)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAccount(ctx, "tybalt", creds(1)); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("CreateAccount after Close = %v, want ErrClosed", err)
	}
	db2 := openPath(t, path)
	if got, err := db2.Accounts(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Accounts after reopen = %v, %v; want %v", got, err, want)
	}
	mustVerify(t, db2, want...)
}

func TestOpenOddPath(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data?x=1#frag %41 ü")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "casp3r.db")
	db := openPath(t, path)
	mustCreate(t, db, "juliet")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %q: %v", path, err)
	}
	dst := filepath.Join(dir, "backup?.db")
	if err := db.Backup(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst); err != nil {
		t.Fatalf("backup not at %q: %v", dst, err)
	}
}
