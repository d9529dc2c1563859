package sqlite

import (
	"context"
	"database/sql"
	"errors"
)

// Reads on hot paths (credentials at login, the roster at initial
// presence, account checks for every message to an offline user) run as
// statements prepared once and kept, instead of being prepared and thrown
// away on every call. database/sql re-prepares a statement per connection
// of the read pool as needed.

func (db *DB) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if st := db.stmts[q]; st != nil {
		return st, nil
	}
	st, err := db.r.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if db.stmts == nil {
		db.stmts = make(map[string]*sql.Stmt)
	}
	db.stmts[q] = st
	return st, nil
}

// queryRow runs a one-row read through a kept statement.
func (db *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := db.prepared(ctx, q)
	if err != nil {
		return db.r.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a read through a kept statement.
func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := db.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// closeStmts closes the kept statements.
func (db *DB) closeStmts() error {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	var errs []error
	for q, st := range db.stmts {
		errs = append(errs, st.Close())
		delete(db.stmts, q)
	}
	return errors.Join(errs...)
}

// stringMap runs a two-column read of strings into a map, key to value.
func (db *DB) stringMap(ctx context.Context, q string, args ...any) (map[string]string, error) {
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := make(map[string]string)
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, rows.Err()
}
