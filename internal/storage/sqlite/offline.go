package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"casp3r/internal/storage"
)

// StoreOffline stores the raw XML stanza for user (XEP-0160). When max > 0
// and user already has max messages stored, it returns
// storage.ErrQuotaExceeded. It returns storage.ErrNotFound if there is no such
// account. The message's ID is the seq of its event in the account's log.
func (db *DB) StoreOffline(ctx context.Context, user string, stanza []byte, max int) error {
	data := appendOfflineData(make([]byte, 0, len(stanza)+32), stanza)
	err := db.write(ctx, func(t *wtx) error {
		var n int
		err := t.queryRow(sOfflineCount, user).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("account %q: %w", user, storage.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("count offline messages: %w", err)
		}
		if max > 0 && n >= max {
			return fmt.Errorf("%d offline messages for %q: %w", n, user, storage.ErrQuotaExceeded)
		}
		seq, now, err := t.append(user, storage.EventOfflineStored, data)
		if err != nil {
			return err
		}
		return t.viewOfflineStored(user, seq, stanza, now)
	})
	if err != nil {
		return fmt.Errorf("store offline message: %w", err)
	}
	return nil
}

// OfflineMessages returns the offline messages of user, oldest first.
func (db *DB) OfflineMessages(ctx context.Context, user string) ([]storage.OfflineMessage, error) {
	rows, err := db.query(ctx, `SELECT id, stanza, stored FROM offline WHERE account = ? ORDER BY id`, user)
	if err != nil {
		return nil, fmt.Errorf("load offline messages: %w", err)
	}
	defer rows.Close()
	var msgs []storage.OfflineMessage
	for rows.Next() {
		var m storage.OfflineMessage
		var stored int64
		if err := rows.Scan(&m.ID, &m.Stanza, &stored); err != nil {
			return nil, fmt.Errorf("load offline messages: %w", err)
		}
		m.Stored = timeFromNano(stored)
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load offline messages: %w", err)
	}
	return msgs, nil
}

// DeleteOffline deletes the offline messages ids of user. IDs that user does
// not have are ignored; when none of them exists, nothing is written.
func (db *DB) DeleteOffline(ctx context.Context, user string, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := db.write(ctx, func(t *wtx) error {
		// Log only the IDs that exist, so that the event says what happened.
		var present []int64
		for _, id := range ids {
			var one int
			err := t.queryRow(sOfflineExists, user, id).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("look up offline message: %w", err)
			}
			if !containsID(present, id) {
				present = append(present, id)
			}
		}
		if len(present) == 0 {
			return nil
		}
		data, err := json.Marshal(offlineDeletedData{IDs: present})
		if err != nil {
			return err
		}
		if _, _, err := t.append(user, storage.EventOfflineDeleted, data); err != nil {
			return err
		}
		return t.viewOfflineDeleted(user, present)
	})
	if err != nil {
		return fmt.Errorf("delete offline messages: %w", err)
	}
	return nil
}

func containsID(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
