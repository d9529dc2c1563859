package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema steps, applied in order. The database's
// PRAGMA user_version is the number of steps applied. Append new steps; never
// edit a released one.
var migrations = [...]string{
	// 1: account logs, signed heads, account keys and the first views.
	`
CREATE TABLE events (
	account TEXT    NOT NULL,
	seq     INTEGER NOT NULL,
	type    TEXT    NOT NULL,
	data    BLOB    NOT NULL, -- JSON
	time    INTEGER NOT NULL, -- Unix nanoseconds
	prev    BLOB    NOT NULL,
	hash    BLOB    NOT NULL,
	PRIMARY KEY (account, seq)
);
CREATE TABLE heads (
	account TEXT    NOT NULL PRIMARY KEY,
	seq     INTEGER NOT NULL,
	hash    BLOB    NOT NULL,
	sig     BLOB    NOT NULL
) WITHOUT ROWID;
CREATE TABLE accounts_keys (
	account TEXT NOT NULL PRIMARY KEY,
	public  BLOB NOT NULL,
	private BLOB NOT NULL
) WITHOUT ROWID;

-- Views, materialized from events.
CREATE TABLE accounts (
	name        TEXT    NOT NULL PRIMARY KEY,
	credentials BLOB    NOT NULL, -- JSON of storage.Credentials
	roster_ver  INTEGER NOT NULL, -- seq of the last roster event, 0 if none
	created     INTEGER NOT NULL  -- Unix nanoseconds
) WITHOUT ROWID;
CREATE TABLE roster (
	account      TEXT    NOT NULL,
	jid          TEXT    NOT NULL,
	name         TEXT    NOT NULL,
	groups       TEXT,             -- names separated by U+001F, NULL if none
	subscription TEXT    NOT NULL,
	ask          INTEGER NOT NULL,
	pending_in   INTEGER NOT NULL,
	approved     INTEGER NOT NULL,
	hidden       INTEGER NOT NULL,
	PRIMARY KEY (account, jid)
) WITHOUT ROWID;
CREATE TABLE offline (
	account TEXT    NOT NULL,
	id      INTEGER NOT NULL, -- seq of the offline-stored event
	stanza  BLOB    NOT NULL,
	stored  INTEGER NOT NULL, -- Unix nanoseconds
	UNIQUE (account, id)
);
`,
	// 2: account roles, vCards, and the server logs with the federation
	// domain lists.
	`
ALTER TABLE accounts ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
CREATE TABLE vcards (
	account TEXT NOT NULL PRIMARY KEY,
	xml     BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE server_events (
	log  TEXT    NOT NULL, -- e.g. 'federation'
	seq  INTEGER NOT NULL,
	type TEXT    NOT NULL,
	data BLOB    NOT NULL, -- JSON
	time INTEGER NOT NULL, -- Unix nanoseconds
	prev BLOB    NOT NULL,
	hash BLOB    NOT NULL,
	PRIMARY KEY (log, seq)
);
CREATE TABLE federation_domains (
	domain TEXT NOT NULL PRIMARY KEY,
	action TEXT NOT NULL -- 'allow' or 'deny'
) WITHOUT ROWID;
`,
	// 3: replication in a cluster: how far each log is in the shared log,
	// and how far this node has applied the shared log.
	`
CREATE TABLE replicated (
	log TEXT    NOT NULL PRIMARY KEY, -- 'a:' account or 's:' server log name
	pos INTEGER NOT NULL,             -- position of the log's last entry in the shared log
	seq INTEGER NOT NULL              -- seq of the last event in that entry
) WITHOUT ROWID;
CREATE TABLE replica_cursor (
	id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	pos INTEGER NOT NULL -- position of the last shared log entry applied
);
`,
}

// migrate brings the schema of the database up to date, in one write
// transaction, so that processes opening the same file concurrently apply
// each step once.
func migrate(ctx context.Context, w *sql.DB) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: schema version %d is newer than this program's (%d)", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the value is a trusted integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
