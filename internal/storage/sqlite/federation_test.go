package sqlite

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"casp3r/internal/storage"
)

func TestFederationRules(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	type op struct{ verb, domain, action string }
	steps := []struct {
		name      string
		op        op
		wantErr   error // sentinel, or errAny
		want      map[string]string
		wantEvent string // type of the event appended, "" for none
	}{
		{"empty", op{}, nil, map[string]string{}, ""},
		{"deny", op{"set", "spam.example", "deny"}, nil, map[string]string{"spam.example": "deny"}, storage.EventFederationDeny},
		{"allow another", op{"set", "friend.example", "allow"}, nil,
			map[string]string{"spam.example": "deny", "friend.example": "allow"}, storage.EventFederationAllow},
		{"same rule again writes nothing", op{"set", "spam.example", "deny"}, nil,
			map[string]string{"spam.example": "deny", "friend.example": "allow"}, ""},
		{"one rule per domain", op{"set", "spam.example", "allow"}, nil,
			map[string]string{"spam.example": "allow", "friend.example": "allow"}, storage.EventFederationAllow},
		{"bad action", op{"set", "x.example", "block"}, errAny,
			map[string]string{"spam.example": "allow", "friend.example": "allow"}, ""},
		{"empty domain", op{"set", "", "deny"}, errAny,
			map[string]string{"spam.example": "allow", "friend.example": "allow"}, ""},
		{"remove", op{"remove", "spam.example", ""}, nil, map[string]string{"friend.example": "allow"}, storage.EventFederationRemove},
		{"remove again", op{"remove", "spam.example", ""}, storage.ErrNotFound, map[string]string{"friend.example": "allow"}, ""},
		{"remove unknown", op{"remove", "nope.example", ""}, storage.ErrNotFound, map[string]string{"friend.example": "allow"}, ""},
	}
	for _, st := range steps {
		before, _ := db.ServerLog(ctx, storage.ServerLogFederation, 0)
		var err error
		switch st.op.verb {
		case "set":
			err = db.SetFederationRule(ctx, st.op.domain, st.op.action)
		case "remove":
			err = db.RemoveFederationRule(ctx, st.op.domain)
		}
		switch {
		case st.wantErr == nil && err != nil:
			t.Errorf("%s: %v", st.name, err)
		case st.wantErr == errAny && err == nil:
			t.Errorf("%s: succeeded, want an error", st.name)
		case st.wantErr != nil && st.wantErr != errAny && !errors.Is(err, st.wantErr):
			t.Errorf("%s: error %v, want %v", st.name, err, st.wantErr)
		}
		got, err := db.FederationRules(ctx)
		if err != nil || !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s: FederationRules = %v, %v; want %v", st.name, got, err, st.want)
		}
		after, _ := db.ServerLog(ctx, storage.ServerLogFederation, 0)
		switch {
		case st.wantEvent == "" && len(after) != len(before):
			t.Errorf("%s: log grew by %d events, want 0", st.name, len(after)-len(before))
		case st.wantEvent != "" && (len(after) != len(before)+1 || after[len(after)-1].Type != st.wantEvent):
			t.Errorf("%s: log %v, want one more %s event", st.name, after, st.wantEvent)
		}
	}
	if err := db.VerifyServerLog(ctx, storage.ServerLogFederation); err != nil {
		t.Fatal(err)
	}
	evs, err := db.ServerLog(ctx, storage.ServerLogFederation, 2)
	if err != nil || len(evs) != 2 || evs[0].Seq != 3 || evs[0].Account != storage.ServerLogFederation {
		t.Errorf("ServerLog(after 2) = %v, %v", evs, err)
	}
	// The views are a function of the log.
	want := dumpViews(t, path)
	mustExec(t, rawDB(t, path), `DELETE FROM federation_domains`)
	if err := db.RebuildViews(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dumpViews(t, path); got != want {
		t.Errorf("views after rebuild:\n%s\nwant:\n%s", got, want)
	}
}

func TestVerifyServerLogDetectsTampering(t *testing.T) {
	tests := []struct {
		name string
		q    string
	}{
		{"data changed", `UPDATE server_events SET data = '{"domain":"evil.example"}' WHERE seq = 2`},
		{"event removed", `DELETE FROM server_events WHERE seq = 2`},
		{"prev changed", `UPDATE server_events SET prev = x'00' WHERE seq = 3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db, path := openTest(t)
			for _, d := range []string{"a.example", "b.example", "c.example"} {
				if err := db.SetFederationRule(ctx, d, storage.FederationDeny); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.VerifyServerLog(ctx, storage.ServerLogFederation); err != nil {
				t.Fatal(err)
			}
			mustExec(t, rawDB(t, path), tt.q)
			if err := db.VerifyServerLog(ctx, storage.ServerLogFederation); !errors.Is(err, storage.ErrCorrupt) {
				t.Errorf("VerifyServerLog = %v, want ErrCorrupt", err)
			}
		})
	}
}
