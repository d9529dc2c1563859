package sqlite

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"casp3r/internal/storage"
)

var errEmptyUser = errors.New("empty account name")

// CreateAccount creates the account user with the credentials c and a new
// Ed25519 key pair, as a member. It returns storage.ErrExists if the account
// exists. The log of a deleted account with the same name is continued, not
// replaced.
func (db *DB) CreateAccount(ctx context.Context, user string, c storage.Credentials) error {
	return db.CreateAccountWithRole(ctx, user, c, storage.RoleMember)
}

// CreateAccountWithRole is CreateAccount with the account's role (see
// storage.ValidRole): a role other than member is a role-set event after
// account-created, in the same transaction.
func (db *DB) CreateAccountWithRole(ctx context.Context, user string, c storage.Credentials, role string) error {
	if user == "" {
		return fmt.Errorf("create account: %w", errEmptyUser)
	}
	if !storage.ValidRole(role) {
		return fmt.Errorf("create account: %w", errBadRole(role))
	}
	var roleData []byte
	if role != storage.RoleMember {
		var err error
		if roleData, err = json.Marshal(roleSetData{Role: role}); err != nil {
			return fmt.Errorf("create account: %w", err)
		}
	}
	creds, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("create account: encode credentials: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("create account: generate key: %w", err)
	}
	data, err := json.Marshal(accountCreatedData{Key: pub, Credentials: creds})
	if err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	err = db.write(ctx, func(t *wtx) error {
		ok, err := t.accountExists(user)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("account %q: %w", user, storage.ErrExists)
		}
		_, now, err := t.append(user, storage.EventAccountCreated, data)
		if err != nil {
			return err
		}
		if _, err := t.exec(sUpsertKey, user, []byte(pub), []byte(priv)); err != nil {
			return fmt.Errorf("store account key: %w", err)
		}
		if err := t.viewAccountCreated(user, creds, now); err != nil {
			return err
		}
		if roleData == nil {
			return nil
		}
		if _, _, err := t.append(user, storage.EventRoleSet, roleData); err != nil {
			return err
		}
		return t.viewRoleSet(user, role)
	})
	if err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	return nil
}

// DeleteAccount deletes the account user and its views (roster, offline
// messages). Its log is kept and ends with an account-deleted event. It
// returns storage.ErrNotFound if there is no such account.
func (db *DB) DeleteAccount(ctx context.Context, user string) error {
	err := db.write(ctx, func(t *wtx) error {
		if err := t.mustExist(user); err != nil {
			return err
		}
		if _, _, err := t.append(user, storage.EventAccountDeleted, []byte("{}")); err != nil {
			return err
		}
		return t.viewAccountDeleted(user)
	})
	if err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	return nil
}

// SetCredentials replaces the credentials of user. It returns
// storage.ErrNotFound if there is no such account.
func (db *DB) SetCredentials(ctx context.Context, user string, c storage.Credentials) error {
	creds, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("set credentials: %w", err)
	}
	data, err := json.Marshal(credentialsSetData{Credentials: creds})
	if err != nil {
		return fmt.Errorf("set credentials: %w", err)
	}
	err = db.write(ctx, func(t *wtx) error {
		if err := t.mustExist(user); err != nil {
			return err
		}
		if _, _, err := t.append(user, storage.EventCredentialsSet, data); err != nil {
			return err
		}
		return t.viewCredentialsSet(user, creds)
	})
	if err != nil {
		return fmt.Errorf("set credentials: %w", err)
	}
	return nil
}

// Credentials returns the credentials of user, or storage.ErrNotFound.
func (db *DB) Credentials(ctx context.Context, user string) (storage.Credentials, error) {
	var raw []byte
	var c storage.Credentials
	err := db.queryRow(ctx, `SELECT credentials FROM accounts WHERE name = ?`, user).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("credentials of %q: %w", user, storage.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("credentials of %q: %w", user, err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("credentials of %q: %w", user, err)
	}
	return c, nil
}

// AccountExists reports whether the account user exists.
func (db *DB) AccountExists(ctx context.Context, user string) (bool, error) {
	var one int
	err := db.queryRow(ctx, `SELECT 1 FROM accounts WHERE name = ?`, user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up account %q: %w", user, err)
	}
	return true, nil
}

// Accounts returns the names of all accounts, sorted.
func (db *DB) Accounts(ctx context.Context) ([]string, error) {
	rows, err := db.query(ctx, `SELECT name FROM accounts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return names, nil
}

func timeFromNano(n int64) time.Time { return time.Unix(0, n).UTC() }
