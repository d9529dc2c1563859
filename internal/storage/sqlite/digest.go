package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
)

// digestQueries dump the views and the log heads in a fixed order. Every
// column is an integer, a text or a blob (NULL only where noted).
var digestQueries = [...]string{
	`SELECT name, credentials, roster_ver, created, role FROM accounts ORDER BY name`,
	`SELECT account, jid, name, groups, subscription, ask, pending_in, approved, hidden FROM roster ORDER BY account, jid`, // groups may be NULL
	`SELECT account, id, stanza, stored FROM offline ORDER BY account, id`,
	`SELECT account, xml FROM vcards ORDER BY account`,
	`SELECT domain, action FROM federation_domains ORDER BY domain`,
	`SELECT account, seq, hash FROM heads ORDER BY account`,
	`SELECT log, max(seq), (SELECT hash FROM server_events s WHERE s.log = e.log ORDER BY seq DESC LIMIT 1)
		FROM server_events e GROUP BY log ORDER BY log`,
}

// ViewsDigest returns the hex SHA-256 of a canonical dump of the views
// (accounts with their credentials and roles, rosters, offline messages,
// vCards, federation rules) and of the heads of the logs (seq and hash), so
// that two nodes of a cluster with the same state have the same digest.
func (db *DB) ViewsDigest(ctx context.Context) (string, error) {
	// One read transaction: one snapshot.
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("views digest: %w", err)
	}
	defer tx.Rollback() // read only
	h := sha256.New()
	for i, q := range digestQueries {
		if err := digestQuery(ctx, tx, h, byte(i), q); err != nil {
			return "", fmt.Errorf("views digest: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// digestQuery writes to h the table tag, then each row of q: a row marker
// and each value with its type and length, so that the encoding is
// unambiguous. Texts and blobs are alike: only their bytes count.
func digestQuery(ctx context.Context, tx *sql.Tx, h hash.Hash, tag byte, q string) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var b []byte
	b = append(b, 't', tag)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		b = append(b, 'r')
		for _, v := range vals {
			switch v := v.(type) {
			case nil:
				b = append(b, 'n')
			case int64:
				b = append(b, 'i')
				b = binary.BigEndian.AppendUint64(b, uint64(v))
			case string:
				b = append(b, 'b')
				b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
				b = append(b, v...)
			case []byte:
				b = append(b, 'b')
				b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
				b = append(b, v...)
			default:
				return fmt.Errorf("%s: unexpected value of type %T", q, v)
			}
		}
		h.Write(b)
		b = b[:0]
	}
	h.Write(b)
	return rows.Err()
}
