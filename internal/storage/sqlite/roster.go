package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"casp3r/internal/storage"
)

const rosterCols = `jid, name, groups, subscription, ask, pending_in, approved, hidden`

func scanRosterItem(s interface{ Scan(...any) error }, it *storage.RosterItem) error {
	var groups sql.NullString
	if err := s.Scan(&it.JID, &it.Name, &groups, &it.Subscription, &it.Ask, &it.PendingIn, &it.Approved, &it.Hidden); err != nil {
		return err
	}
	it.Groups = nil
	if groups.Valid {
		it.Groups = strings.Split(groups.String, groupSep)
	}
	return nil
}

// groupSep separates the group names of a roster item in the roster view.
// U+001F cannot occur in XML 1.0 character data, so it cannot occur in a
// group name (RFC 6121 §2.1.2.4); PutRosterItem refuses it.
const groupSep = "\x1f"

// Roster returns the roster of user, sorted by JID, and its version: the
// decimal seq of the account's last roster event, "0" if none. Items with
// Hidden set are included; the caller leaves them out of a roster get. It
// returns storage.ErrNotFound if there is no such account.
func (db *DB) Roster(ctx context.Context, user string) (items []storage.RosterItem, ver string, err error) {
	// One read transaction: the items and the version are of one snapshot.
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, "", fmt.Errorf("load roster: %w", err)
	}
	defer tx.Rollback() // read only
	var v int64
	err = tx.QueryRowContext(ctx, `SELECT roster_ver FROM accounts WHERE name = ?`, user).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("load roster of %q: %w", user, storage.ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("load roster: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+rosterCols+` FROM roster WHERE account = ? ORDER BY jid`, user)
	if err != nil {
		return nil, "", fmt.Errorf("load roster: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var it storage.RosterItem
		if err := scanRosterItem(rows, &it); err != nil {
			return nil, "", fmt.Errorf("load roster: %w", err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("load roster: %w", err)
	}
	return items, strconv.FormatInt(v, 10), nil
}

// RosterItem returns the item jid of user's roster, or storage.ErrNotFound.
func (db *DB) RosterItem(ctx context.Context, user, jid string) (storage.RosterItem, error) {
	var it storage.RosterItem
	row := db.queryRow(ctx, `SELECT `+rosterCols+` FROM roster WHERE account = ? AND jid = ?`, user, jid)
	err := scanRosterItem(row, &it)
	if errors.Is(err, sql.ErrNoRows) {
		return it, fmt.Errorf("roster item %q of %q: %w", jid, user, storage.ErrNotFound)
	}
	if err != nil {
		return it, fmt.Errorf("roster item %q of %q: %w", jid, user, err)
	}
	return it, nil
}

// PutRosterItem adds or replaces the item it.JID of user's roster and
// returns the new roster version. An empty Subscription means "none". It
// returns storage.ErrNotFound if there is no such account.
func (db *DB) PutRosterItem(ctx context.Context, user string, it storage.RosterItem) (ver string, err error) {
	if it.JID == "" {
		return "", errors.New("put roster item: empty JID")
	}
	switch it.Subscription {
	case "":
		it.Subscription = storage.SubNone
	case storage.SubNone, storage.SubTo, storage.SubFrom, storage.SubBoth:
	default:
		return "", fmt.Errorf("put roster item: invalid subscription %q", it.Subscription)
	}
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	for _, g := range it.Groups {
		if strings.Contains(g, groupSep) {
			return "", fmt.Errorf("put roster item: invalid group name %q", g)
		}
	}
	data, err := json.Marshal(&it)
	if err != nil {
		return "", fmt.Errorf("put roster item: %w", err)
	}
	var seq uint64
	err = db.write(ctx, func(t *wtx) error {
		if err := t.mustExist(user); err != nil {
			return err
		}
		s, _, err := t.append(user, storage.EventRosterSet, data)
		if err != nil {
			return err
		}
		seq = s
		return t.viewRosterSet(user, &it, s)
	})
	if err != nil {
		return "", fmt.Errorf("put roster item: %w", err)
	}
	return strconv.FormatUint(seq, 10), nil
}

// DeleteRosterItem removes the item jid from user's roster and returns the
// new roster version. It returns storage.ErrNotFound if there is no such
// account or item.
func (db *DB) DeleteRosterItem(ctx context.Context, user, jid string) (ver string, err error) {
	data, err := json.Marshal(rosterRemovedData{JID: jid})
	if err != nil {
		return "", fmt.Errorf("delete roster item: %w", err)
	}
	var seq uint64
	err = db.write(ctx, func(t *wtx) error {
		var one int
		err := t.queryRow(sRosterItemExists, user, jid).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("roster item %q of %q: %w", jid, user, storage.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up roster item: %w", err)
		}
		s, _, err := t.append(user, storage.EventRosterRemoved, data)
		if err != nil {
			return err
		}
		seq = s
		return t.viewRosterRemoved(user, jid, s)
	})
	if err != nil {
		return "", fmt.Errorf("delete roster item: %w", err)
	}
	return strconv.FormatUint(seq, 10), nil
}
