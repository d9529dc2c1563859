package sqlite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"casp3r/internal/storage"
)

func TestStoreOffline(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	start := time.Now()
	tests := []struct {
		name   string
		user   string
		stanza string
		max    int
		want   error
	}{
		{"plain", "juliet", `<message from="romeo@example.net/orchard" to="juliet@example.com"><body>Hi</body></message>`, 0, nil},
		{"quotes, escapes and controls", "juliet", "<message><body>\"\\\t\n\r\x01 </body> &amp; \u2028 ὀδυσσεύς</message>", 3, nil},
		{"invalid UTF-8", "juliet", "<message><body>\xff\xfe</body></message>", 3, nil},
		{"quota reached", "juliet", "<message/>", 3, storage.ErrQuotaExceeded},
		{"quota with room", "juliet", "<message/>", 4, nil},
		{"no quota", "juliet", "<message>5</message>", 0, nil},
		{"no account", "nobody", "<message/>", 0, storage.ErrNotFound},
	}
	var want []string
	for _, tt := range tests {
		err := db.StoreOffline(ctx, tt.user, []byte(tt.stanza), tt.max)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: StoreOffline = %v, want %v", tt.name, err, tt.want)
		}
		if err == nil {
			want = append(want, tt.stanza)
		}
	}
	msgs, err := db.OfflineMessages(ctx, "juliet")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(msgs), len(want); got != want {
		t.Fatalf("len(OfflineMessages) = %d, want %d", got, want)
	}
	for i, m := range msgs {
		if got := string(m.Stanza); got != want[i] {
			t.Errorf("message %d = %q, want %q", i, got, want[i])
		}
		if i > 0 && m.ID <= msgs[i-1].ID {
			t.Errorf("message %d: ID %d not after %d", i, m.ID, msgs[i-1].ID)
		}
		if m.Stored.Before(start.Add(-time.Second)) || m.Stored.After(time.Now().Add(time.Second)) {
			t.Errorf("message %d: Stored = %v, want about now", i, m.Stored)
		}
	}
	// Event data is JSON, with valid UTF-8 stanzas readable as strings.
	evs, err := db.Log(ctx, "juliet", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if !json.Valid(e.Data) {
			t.Errorf("event %d (%s): data is not JSON: %q", e.Seq, e.Type, e.Data)
		}
	}
	if got := evs[1].Data; !bytes.Contains(got, []byte(`"stanza":"<message from=\"romeo@example.net/orchard\"`)) {
		t.Errorf("offline event data = %s", got)
	}
	mustVerify(t, db, "juliet")
	if msgs, err := db.OfflineMessages(ctx, "nobody"); err != nil || len(msgs) != 0 {
		t.Errorf("OfflineMessages(nobody) = %v, %v", msgs, err)
	}
}

func TestDeleteOffline(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet", "romeo")
	for _, s := range []string{"<a/>", "<b/>", "<c/>", "<d/>"} {
		if err := db.StoreOffline(ctx, "juliet", []byte(s), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.StoreOffline(ctx, "romeo", []byte("<r/>"), 0); err != nil {
		t.Fatal(err)
	}
	msgs, _ := db.OfflineMessages(ctx, "juliet")
	id := func(i int) int64 { return msgs[i].ID }
	tests := []struct {
		name      string
		user      string
		ids       []int64
		want      string // remaining stanzas of juliet
		newEvents int
	}{
		{"none", "juliet", nil, "<a/><b/><c/><d/>", 0},
		{"one", "juliet", []int64{id(1)}, "<a/><c/><d/>", 1},
		{"again", "juliet", []int64{id(1)}, "<a/><c/><d/>", 0},
		{"not own", "romeo", []int64{id(2)}, "<a/><c/><d/>", 0},
		{"several with duplicate and missing", "juliet", []int64{id(3), id(0), id(3), 9999}, "<c/>", 1},
		{"no account", "nobody", []int64{1}, "<c/>", 0},
	}
	for _, tt := range tests {
		before, _ := db.Log(ctx, "juliet", 0)
		if err := db.DeleteOffline(ctx, tt.user, tt.ids...); err != nil {
			t.Fatalf("%s: DeleteOffline: %v", tt.name, err)
		}
		after, _ := db.Log(ctx, "juliet", 0)
		if got := len(after) - len(before); got != tt.newEvents {
			t.Errorf("%s: %d new events in juliet's log, want %d", tt.name, got, tt.newEvents)
		}
		left, err := db.OfflineMessages(ctx, "juliet")
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for _, m := range left {
			got += string(m.Stanza)
		}
		if got != tt.want {
			t.Errorf("%s: left %q, want %q", tt.name, got, tt.want)
		}
	}
	if left, _ := db.OfflineMessages(ctx, "romeo"); len(left) != 1 {
		t.Errorf("romeo's messages = %v, want 1", left)
	}
	mustVerify(t, db, "juliet", "romeo")
}
