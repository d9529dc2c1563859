package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"casp3r/internal/storage"
)

func TestVCard(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet", "romeo")
	const (
		v1 = `<vCard xmlns="vcard-temp"><FN>Juliet "J" Capulet</FN></vCard>`
		v2 = "<vCard xmlns='vcard-temp'><NICKNAME>\xff</NICKNAME></vCard>" // not UTF-8: stored as base64
	)
	steps := []struct {
		name      string
		user      string
		set       string // vCard to set; "" to only read
		wantErr   error
		want      string // vCard read afterwards; "" for ErrNotFound
		wantGrows bool
	}{
		{"none yet", "juliet", "", nil, "", false},
		{"set", "juliet", v1, nil, v1, true},
		{"same again writes nothing", "juliet", v1, nil, v1, false},
		{"replace", "juliet", v2, nil, v2, true},
		{"other account untouched", "romeo", "", nil, "", false},
		{"unknown account", "nobody", v1, storage.ErrNotFound, "", false},
	}
	for _, st := range steps {
		before, _ := db.Log(ctx, st.user, 0)
		if st.set != "" {
			if err := db.SetVCard(ctx, st.user, []byte(st.set)); !errors.Is(err, st.wantErr) {
				t.Errorf("%s: SetVCard = %v, want %v", st.name, err, st.wantErr)
			}
		}
		got, err := db.VCard(ctx, st.user)
		if st.want == "" {
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: VCard = %q, %v; want ErrNotFound", st.name, got, err)
			}
		} else if err != nil || string(got) != st.want {
			t.Errorf("%s: VCard = %q, %v; want %q", st.name, got, err, st.want)
		}
		after, _ := db.Log(ctx, st.user, 0)
		if got, want := len(after)-len(before), map[bool]int{false: 0, true: 1}[st.wantGrows]; got != want {
			t.Errorf("%s: log grew by %d events, want %d", st.name, got, want)
		}
	}
	// The event data is JSON naming the vCard.
	evs, err := db.Log(ctx, "juliet", 0)
	if err != nil {
		t.Fatal(err)
	}
	var d vcardSetData
	if e := evs[1]; e.Type != storage.EventVCardSet || json.Unmarshal(e.Data, &d) != nil || d.VCard == nil || *d.VCard != v1 {
		t.Errorf("event 2 = %s %s, want vcard-set of v1", e.Type, e.Data)
	}
	// Deleting the account deletes its vCard; recreating it starts empty.
	if err := db.DeleteAccount(ctx, "juliet"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.VCard(ctx, "juliet"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("VCard after delete = %v, want ErrNotFound", err)
	}
	mustCreate(t, db, "juliet")
	if err := db.RebuildViews(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.VCard(ctx, "juliet"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("VCard after recreate = %v, want ErrNotFound", err)
	}
	mustVerify(t, db, "juliet", "romeo")
}
