package sqlite

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"casp3r/internal/storage"
)

func TestRoster(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet", "romeo")

	if items, ver, err := db.Roster(ctx, "juliet"); err != nil || len(items) != 0 || ver != "0" {
		t.Fatalf("Roster of new account = %v, %q, %v; want empty, \"0\"", items, ver, err)
	}
	// Each step changes juliet's roster; want is the roster afterwards.
	nurse := storage.RosterItem{JID: "nurse@example.com", Name: "Nurse", Groups: []string{"Servants", "Friends"}, Subscription: storage.SubBoth}
	romeo := storage.RosterItem{JID: "romeo@example.net", Subscription: storage.SubNone, Ask: true, Approved: true}
	romeoTo := storage.RosterItem{JID: "romeo@example.net", Name: "Romeo", Subscription: storage.SubTo}
	odd := storage.RosterItem{JID: "benvolio@example.net", Subscription: storage.SubFrom, Groups: []string{"", "Montague ♥", "", "a,b;\"c\""}}
	tybalt := storage.RosterItem{JID: "tybalt@example.org", Subscription: storage.SubNone, PendingIn: true, Hidden: true}
	steps := []struct {
		name    string
		put     *storage.RosterItem
		del     string
		wantErr error
		want    []storage.RosterItem
	}{
		{name: "add with groups", put: &nurse, want: []storage.RosterItem{nurse}},
		{name: "add pending out", put: &romeo, want: []storage.RosterItem{nurse, romeo}},
		{name: "replace", put: &romeoTo, want: []storage.RosterItem{nurse, romeoTo}},
		{name: "add hidden pending in", put: &tybalt, want: []storage.RosterItem{nurse, romeoTo, tybalt}},
		{name: "remove", del: "nurse@example.com", want: []storage.RosterItem{romeoTo, tybalt}},
		{name: "remove missing", del: "nurse@example.com", wantErr: storage.ErrNotFound, want: []storage.RosterItem{romeoTo, tybalt}},
		{name: "bad subscription", put: &storage.RosterItem{JID: "x@example.com", Subscription: "maybe"}, wantErr: errAny, want: []storage.RosterItem{romeoTo, tybalt}},
		{name: "empty JID", put: &storage.RosterItem{}, wantErr: errAny, want: []storage.RosterItem{romeoTo, tybalt}},
		{name: "U+001F in group", put: &storage.RosterItem{JID: "x@example.com", Groups: []string{"a\x1fb"}}, wantErr: errAny, want: []storage.RosterItem{romeoTo, tybalt}},
		{name: "empty and unicode groups", put: &odd, want: []storage.RosterItem{odd, romeoTo, tybalt}},
	}
	lastVer := "0"
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var ver string
			var err error
			if st.put != nil {
				ver, err = db.PutRosterItem(ctx, "juliet", *st.put)
			} else {
				ver, err = db.DeleteRosterItem(ctx, "juliet", st.del)
			}
			if st.wantErr != nil {
				if err == nil || (st.wantErr != errAny && !errors.Is(err, st.wantErr)) {
					t.Fatalf("err = %v, want %v", err, st.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				// The version is the seq of the event: it grows.
				v, _ := strconv.ParseUint(ver, 10, 64)
				last, _ := strconv.ParseUint(lastVer, 10, 64)
				if v <= last {
					t.Errorf("ver = %q, want > %q", ver, lastVer)
				}
				lastVer = ver
			}
			items, gotVer, err := db.Roster(ctx, "juliet")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(items, st.want) {
				t.Errorf("Roster = %+v\nwant %+v", items, st.want)
			}
			if gotVer != lastVer {
				t.Errorf("Roster ver = %q, want %q", gotVer, lastVer)
			}
			for _, it := range st.want {
				got, err := db.RosterItem(ctx, "juliet", it.JID)
				if err != nil || !reflect.DeepEqual(got, it) {
					t.Errorf("RosterItem(%q) = %+v, %v; want %+v", it.JID, got, err, it)
				}
			}
		})
	}
	if _, err := db.RosterItem(ctx, "juliet", "nurse@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem(removed) = %v, want ErrNotFound", err)
	}
	// Other events of the account do not change the roster version.
	if err := db.StoreOffline(ctx, "juliet", []byte("<message/>"), 0); err != nil {
		t.Fatal(err)
	}
	if _, ver, _ := db.Roster(ctx, "juliet"); ver != lastVer {
		t.Errorf("ver after offline message = %q, want %q", ver, lastVer)
	}
	// Other accounts and missing accounts.
	if items, _, err := db.Roster(ctx, "romeo"); err != nil || len(items) != 0 {
		t.Errorf("Roster(romeo) = %v, %v; want empty", items, err)
	}
	if _, err := db.PutRosterItem(ctx, "nobody", nurse); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutRosterItem(nobody) = %v, want ErrNotFound", err)
	}
	if _, err := db.DeleteRosterItem(ctx, "nobody", nurse.JID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteRosterItem(nobody) = %v, want ErrNotFound", err)
	}
	if _, _, err := db.Roster(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Roster(nobody) = %v, want ErrNotFound", err)
	}
	mustVerify(t, db, "juliet", "romeo")
}

// errAny stands for "some error" in tables.
var errAny = errors.New("any error")

func TestPutRosterItemDefaultsSubscription(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	if _, err := db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net", Groups: []string{}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.RosterItem(ctx, "juliet", "romeo@example.net")
	if err != nil {
		t.Fatal(err)
	}
	if want := (storage.RosterItem{JID: "romeo@example.net", Subscription: storage.SubNone}); !reflect.DeepEqual(got, want) {
		t.Errorf("RosterItem = %+v, want %+v", got, want)
	}
}
