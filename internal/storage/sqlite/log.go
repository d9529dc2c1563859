package sqlite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"casp3r/internal/storage"
)

// Log returns the events of user's log with seq > afterSeq, in order. The
// log of a deleted account is kept; a name that never had an account has an
// empty log.
func (db *DB) Log(ctx context.Context, user string, afterSeq uint64) ([]storage.Event, error) {
	rows, err := db.query(ctx,
		`SELECT seq, type, data, time, prev, hash FROM events WHERE account = ? AND seq > ? ORDER BY seq`,
		user, int64(afterSeq))
	if err != nil {
		return nil, fmt.Errorf("read log of %q: %w", user, err)
	}
	defer rows.Close()
	var evs []storage.Event
	for rows.Next() {
		e := storage.Event{Account: user}
		var unixNano int64
		if err := rows.Scan(&e.Seq, &e.Type, &e.Data, &unixNano, &e.Prev, &e.Hash); err != nil {
			return nil, fmt.Errorf("read log of %q: %w", user, err)
		}
		e.Time = timeFromNano(unixNano)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read log of %q: %w", user, err)
	}
	return evs, nil
}

// Head returns the signed head of user's log, or storage.ErrNotFound.
func (db *DB) Head(ctx context.Context, user string) (storage.Head, error) {
	h := storage.Head{Account: user}
	err := db.queryRow(ctx, `SELECT seq, hash, sig FROM heads WHERE account = ?`, user).
		Scan(&h.Seq, &h.Hash, &h.Sig)
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("log head of %q: %w", user, storage.ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("log head of %q: %w", user, err)
	}
	return h, nil
}

// VerifyLog checks user's log: seqs run 1..n, each event's hash is
// storage.HashEvent of its fields, each links to the previous hash, and the
// stored head is the last event, signed by the key of the account's latest
// account-created event. It returns an error wrapping storage.ErrCorrupt when
// a check fails, and storage.ErrNotFound when user has no log.
func (db *DB) VerifyLog(ctx context.Context, user string) error {
	// One read transaction: the events and the head are of one snapshot.
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("verify log of %q: %w", user, err)
	}
	defer tx.Rollback() // read only
	rows, err := tx.QueryContext(ctx,
		`SELECT seq, type, data, time, prev, hash FROM events WHERE account = ? ORDER BY seq`, user)
	if err != nil {
		return fmt.Errorf("verify log of %q: %w", user, err)
	}
	defer rows.Close()
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("verify log of %q: %s: %w", user, fmt.Sprintf(format, args...), storage.ErrCorrupt)
	}
	var (
		e    = storage.Event{Account: user}
		last []byte // hash of the previous event
		n    uint64
		key  ed25519.PublicKey
	)
	for rows.Next() {
		var unixNano int64
		// Scan into fresh slices: e.Hash is kept as last.
		e.Prev, e.Hash = nil, nil
		if err := rows.Scan(&e.Seq, &e.Type, &e.Data, &unixNano, &e.Prev, &e.Hash); err != nil {
			return fmt.Errorf("verify log of %q: %w", user, err)
		}
		e.Time = timeFromNano(unixNano)
		n++
		if e.Seq != n {
			return corrupt("event %d: want seq %d", e.Seq, n)
		}
		if !bytes.Equal(e.Prev, last) {
			return corrupt("event %d: prev hash does not match event %d", e.Seq, n-1)
		}
		if h := e.ComputeHash(); !bytes.Equal(h[:], e.Hash) {
			return corrupt("event %d: hash mismatch", e.Seq)
		}
		if e.Type == storage.EventAccountCreated {
			var d accountCreatedData
			if err := json.Unmarshal(e.Data, &d); err != nil || len(d.Key) != ed25519.PublicKeySize {
				return corrupt("event %d: bad account key", e.Seq)
			}
			key = d.Key
		}
		last = e.Hash
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("verify log of %q: %w", user, err)
	}
	if n == 0 {
		return fmt.Errorf("verify log of %q: %w", user, storage.ErrNotFound)
	}
	var h storage.Head
	err = tx.QueryRowContext(ctx, `SELECT seq, hash, sig FROM heads WHERE account = ?`, user).Scan(&h.Seq, &h.Hash, &h.Sig)
	if errors.Is(err, sql.ErrNoRows) {
		return corrupt("no signed head")
	}
	if err != nil {
		return fmt.Errorf("verify log of %q: %w", user, err)
	}
	if h.Seq != n || !bytes.Equal(h.Hash, last) {
		return corrupt("signed head %d is not the last event %d", h.Seq, n)
	}
	if key == nil {
		return corrupt("no account key in log")
	}
	if !ed25519.Verify(key, storage.HeadMessage(user, h.Seq, h.Hash), h.Sig) {
		return corrupt("bad head signature")
	}
	return nil
}

// Backup writes a consistent copy of the database to the new file dst
// (VACUUM INTO), while the store stays in use. dst must not exist.
func (db *DB) Backup(ctx context.Context, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("backup to %s: %w", dst, os.ErrExist)
	}
	// The read pool is query_only, which refuses VACUUM INTO: use a
	// connection of its own. VACUUM INTO reads one snapshot, so writes go on.
	c, err := sql.Open("sqlite", dsn(db.path, false, false))
	if err != nil {
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	if _, err := c.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	return nil
}
