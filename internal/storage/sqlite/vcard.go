package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"casp3r/internal/storage"
)

// SetVCard stores xml, the serialised <vCard xmlns='vcard-temp'/> element of
// user (XEP-0054), in place of the one stored before. Storing the vCard
// already stored writes nothing. It returns storage.ErrNotFound if there is
// no such account. The caller bounds the size.
func (db *DB) SetVCard(ctx context.Context, user string, xml []byte) error {
	data := appendXMLData(make([]byte, 0, len(xml)+16), "vcard", xml)
	err := db.write(ctx, func(t *wtx) error {
		if err := t.mustExist(user); err != nil {
			return err
		}
		var cur []byte
		err := t.queryRow(sVCard, user).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("look up vCard: %w", err)
		}
		if err == nil && bytes.Equal(cur, xml) {
			return nil
		}
		if _, _, err := t.append(user, storage.EventVCardSet, data); err != nil {
			return err
		}
		return t.viewVCardSet(user, xml)
	})
	if err != nil {
		return fmt.Errorf("set vCard: %w", err)
	}
	return nil
}

// VCard returns the serialised vCard of user, or storage.ErrNotFound when
// there is no such account or it has stored none.
func (db *DB) VCard(ctx context.Context, user string) ([]byte, error) {
	var xml []byte
	err := db.queryRow(ctx, `SELECT xml FROM vcards WHERE account = ?`, user).Scan(&xml)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("vCard of %q: %w", user, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("vCard of %q: %w", user, err)
	}
	return xml, nil
}
