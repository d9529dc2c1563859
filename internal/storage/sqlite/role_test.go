package sqlite

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"casp3r/internal/storage"
)

func TestRoles(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	if err := db.CreateAccountWithRole(ctx, "romeo", creds(1), storage.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		user      string
		set       string // role to set; "" to only read
		wantErr   error  // sentinel, or errAny for any error
		wantRole  string // role read afterwards ("" when the read fails)
		wantGrows bool   // the log grows by one event
	}{
		{"new account is a member", "juliet", "", nil, storage.RoleMember, false},
		{"created as admin", "romeo", "", nil, storage.RoleAdmin, false},
		{"limit", "juliet", storage.RoleLimited, nil, storage.RoleLimited, true},
		{"same role again writes nothing", "juliet", storage.RoleLimited, nil, storage.RoleLimited, false},
		{"promote", "juliet", storage.RoleAdmin, nil, storage.RoleAdmin, true},
		{"back to member", "juliet", storage.RoleMember, nil, storage.RoleMember, true},
		{"bad role", "juliet", "root", errAny, storage.RoleMember, false},
		{"empty role", "juliet", "", nil, storage.RoleMember, false},
		{"unknown account", "nobody", storage.RoleAdmin, storage.ErrNotFound, "", false},
	}
	for _, st := range steps {
		before, _ := db.Log(ctx, st.user, 0)
		if st.set != "" || st.wantErr != nil {
			err := db.SetRole(ctx, st.user, st.set)
			switch {
			case st.wantErr == nil && err != nil:
				t.Errorf("%s: SetRole: %v", st.name, err)
			case st.wantErr == errAny && err == nil:
				t.Errorf("%s: SetRole succeeded, want an error", st.name)
			case st.wantErr != nil && st.wantErr != errAny && !errors.Is(err, st.wantErr):
				t.Errorf("%s: SetRole = %v, want %v", st.name, err, st.wantErr)
			}
		}
		role, err := db.Role(ctx, st.user)
		if st.wantRole == "" {
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: Role = %q, %v; want ErrNotFound", st.name, role, err)
			}
		} else if err != nil || role != st.wantRole {
			t.Errorf("%s: Role = %q, %v; want %q", st.name, role, err, st.wantRole)
		}
		after, _ := db.Log(ctx, st.user, 0)
		if got, want := len(after)-len(before), map[bool]int{false: 0, true: 1}[st.wantGrows]; got != want {
			t.Errorf("%s: log grew by %d events, want %d", st.name, got, want)
		}
		if st.wantGrows && after[len(after)-1].Type != storage.EventRoleSet {
			t.Errorf("%s: last event %s, want %s", st.name, after[len(after)-1].Type, storage.EventRoleSet)
		}
	}
	if err := db.CreateAccountWithRole(ctx, "tybalt", creds(2), "root"); err == nil {
		t.Error("CreateAccountWithRole with a bad role succeeded")
	}
	if ok, _ := db.AccountExists(ctx, "tybalt"); ok {
		t.Error("account created with a bad role")
	}
	roles, err := db.Roles(ctx)
	if want := map[string]string{"juliet": "member", "romeo": "admin"}; err != nil || !reflect.DeepEqual(roles, want) {
		t.Errorf("Roles = %v, %v; want %v", roles, err, want)
	}
	// The role of romeo is in its log right after account-created.
	evs, err := db.Log(ctx, "romeo", 0)
	if err != nil || len(evs) != 2 || evs[0].Type != storage.EventAccountCreated || evs[1].Type != storage.EventRoleSet {
		t.Errorf("romeo's log = %v, %v; want account-created, role-set", evs, err)
	}
	mustVerify(t, db, "juliet", "romeo")
}

// TestRoleAfterRecreate checks that a deleted and recreated account starts
// as a member again, also when the views are rebuilt from its log.
func TestRoleAfterRecreate(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if err := db.CreateAccountWithRole(ctx, "juliet", creds(1), storage.RoleLimited); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAccount(ctx, "juliet"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Role(ctx, "juliet"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Role of a deleted account = %v, want ErrNotFound", err)
	}
	mustCreate(t, db, "juliet")
	for _, rebuild := range []bool{false, true} {
		if rebuild {
			if err := db.RebuildViews(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if role, err := db.Role(ctx, "juliet"); err != nil || role != storage.RoleMember {
			t.Errorf("rebuild %v: Role = %q, %v; want member", rebuild, role, err)
		}
	}
}
