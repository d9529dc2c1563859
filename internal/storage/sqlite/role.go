package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"casp3r/internal/storage"
)

// errBadRole reports a role that is not admin, member or limited.
func errBadRole(role string) error {
	return fmt.Errorf("invalid role %q (want %s, %s or %s)", role,
		storage.RoleAdmin, storage.RoleMember, storage.RoleLimited)
}

// SetRole sets the role of user: storage.RoleAdmin, RoleMember or
// RoleLimited. Setting the role the account already has writes nothing. It
// returns storage.ErrNotFound if there is no such account.
func (db *DB) SetRole(ctx context.Context, user, role string) error {
	if !storage.ValidRole(role) {
		return fmt.Errorf("set role: %w", errBadRole(role))
	}
	data, err := json.Marshal(roleSetData{Role: role})
	if err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	err = db.write(ctx, func(t *wtx) error {
		var cur string
		err := t.queryRow(sAccountRole, user).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("account %q: %w", user, storage.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up role: %w", err)
		}
		if cur == role {
			return nil
		}
		if _, _, err := t.append(user, storage.EventRoleSet, data); err != nil {
			return err
		}
		return t.viewRoleSet(user, role)
	})
	if err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	return nil
}

// Role returns the role of user, or storage.ErrNotFound if there is no such
// account.
func (db *DB) Role(ctx context.Context, user string) (string, error) {
	var role string
	err := db.queryRow(ctx, `SELECT role FROM accounts WHERE name = ?`, user).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("role of %q: %w", user, storage.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("role of %q: %w", user, err)
	}
	return role, nil
}

// Roles returns the role of every account, by account name.
func (db *DB) Roles(ctx context.Context) (map[string]string, error) {
	roles, err := db.stringMap(ctx, `SELECT name, role FROM accounts`)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return roles, nil
}
