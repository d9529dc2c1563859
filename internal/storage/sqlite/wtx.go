package sqlite

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"casp3r/internal/storage"
)

// Statements of the write path, prepared once on the write connection.
const (
	sLogHead = iota
	sInsertEvent
	sAccountExists
	sPrivateKey
	sUpsertKey
	sUpsertHead
	sOfflineCount
	sInsertOffline
	sDeleteOffline
	sUpsertAccount
	sSetCredentials
	sDeleteAccount
	sDeleteAccountRoster
	sDeleteAccountOffline
	sUpsertRoster
	sDeleteRoster
	sSetRosterVer
	sRosterItemExists
	sOfflineExists
	sAccountRole
	sSetRole
	sVCard
	sUpsertVCard
	sDeleteAccountVCard
	sServerLogHead
	sInsertServerEvent
	sFederationRule
	sUpsertFederation
	sDeleteFederation
	sSavepoint
	sRollbackTo
	sRelease
	sReplicated
	sUpsertReplicated
	sCursor
	sSetCursor
	sEventsAfter
	sServerEventsAfter
	sEventHash
	sServerEventHash
	sHeadSig
	sAccountKeys
	numStmts
)

var stmtSQL = [numStmts]string{
	sLogHead:       `SELECT seq, hash FROM events WHERE account = ? ORDER BY seq DESC LIMIT 1`,
	sInsertEvent:   `INSERT INTO events (account, seq, type, data, time, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
	sAccountExists: `SELECT 1 FROM accounts WHERE name = ?`,
	sPrivateKey:    `SELECT private FROM accounts_keys WHERE account = ?`,
	sUpsertKey: `INSERT INTO accounts_keys (account, public, private) VALUES (?, ?, ?)
		ON CONFLICT (account) DO UPDATE SET public = excluded.public, private = excluded.private`,
	sUpsertHead: `INSERT INTO heads (account, seq, hash, sig) VALUES (?, ?, ?, ?)
		ON CONFLICT (account) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, sig = excluded.sig`,
	sOfflineCount:  `SELECT (SELECT count(*) FROM offline WHERE account = ?1) FROM accounts WHERE name = ?1`,
	sInsertOffline: `INSERT INTO offline (account, id, stanza, stored) VALUES (?, ?, ?, ?)`,
	sDeleteOffline: `DELETE FROM offline WHERE account = ? AND id = ?`,
	sUpsertAccount: `INSERT INTO accounts (name, credentials, roster_ver, created, role) VALUES (?, ?, 0, ?, 'member')
		ON CONFLICT (name) DO UPDATE SET credentials = excluded.credentials, roster_ver = 0, created = excluded.created,
		role = 'member'`,
	sSetCredentials:       `UPDATE accounts SET credentials = ? WHERE name = ?`,
	sDeleteAccount:        `DELETE FROM accounts WHERE name = ?`,
	sDeleteAccountRoster:  `DELETE FROM roster WHERE account = ?`,
	sDeleteAccountOffline: `DELETE FROM offline WHERE account = ?`,
	sUpsertRoster: `INSERT INTO roster (account, jid, name, groups, subscription, ask, pending_in, approved, hidden)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account, jid) DO UPDATE SET name = excluded.name, groups = excluded.groups,
		subscription = excluded.subscription, ask = excluded.ask, pending_in = excluded.pending_in,
		approved = excluded.approved, hidden = excluded.hidden`,
	sDeleteRoster:     `DELETE FROM roster WHERE account = ? AND jid = ?`,
	sSetRosterVer:     `UPDATE accounts SET roster_ver = ? WHERE name = ?`,
	sRosterItemExists: `SELECT 1 FROM roster WHERE account = ? AND jid = ?`,
	sOfflineExists:    `SELECT 1 FROM offline WHERE account = ? AND id = ?`,
	sAccountRole:      `SELECT role FROM accounts WHERE name = ?`,
	sSetRole:          `UPDATE accounts SET role = ? WHERE name = ?`,
	sVCard:            `SELECT xml FROM vcards WHERE account = ?`,
	sUpsertVCard: `INSERT INTO vcards (account, xml) VALUES (?, ?)
		ON CONFLICT (account) DO UPDATE SET xml = excluded.xml`,
	sDeleteAccountVCard: `DELETE FROM vcards WHERE account = ?`,
	sServerLogHead:      `SELECT seq, hash FROM server_events WHERE log = ? ORDER BY seq DESC LIMIT 1`,
	sInsertServerEvent:  `INSERT INTO server_events (log, seq, type, data, time, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
	sFederationRule:     `SELECT action FROM federation_domains WHERE domain = ?`,
	sUpsertFederation: `INSERT INTO federation_domains (domain, action) VALUES (?, ?)
		ON CONFLICT (domain) DO UPDATE SET action = excluded.action`,
	sDeleteFederation: `DELETE FROM federation_domains WHERE domain = ?`,
	sSavepoint:        `SAVEPOINT req`,
	sRollbackTo:       `ROLLBACK TO req`,
	sRelease:          `RELEASE req`,
	sReplicated:       `SELECT pos, seq FROM replicated WHERE log = ?`,
	// A log's position only grows: an entry applied after a later one of
	// the same log (this node's own, committed first) leaves it.
	sUpsertReplicated: `INSERT INTO replicated (log, pos, seq) VALUES (?, ?, ?)
		ON CONFLICT (log) DO UPDATE SET pos = excluded.pos, seq = excluded.seq WHERE excluded.pos > replicated.pos`,
	sCursor: `SELECT pos FROM replica_cursor WHERE id = 1`,
	sSetCursor: `INSERT INTO replica_cursor (id, pos) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET pos = excluded.pos WHERE excluded.pos > replica_cursor.pos`,
	sEventsAfter:       `SELECT seq, type, data, time, prev, hash FROM events WHERE account = ? AND seq > ? ORDER BY seq`,
	sServerEventsAfter: `SELECT seq, type, data, time, prev, hash FROM server_events WHERE log = ? AND seq > ? ORDER BY seq`,
	sEventHash:         `SELECT hash FROM events WHERE account = ? AND seq = ?`,
	sServerEventHash:   `SELECT hash FROM server_events WHERE log = ? AND seq = ?`,
	sHeadSig:           `SELECT seq, sig FROM heads WHERE account = ?`,
	sAccountKeys:       `SELECT public, private FROM accounts_keys WHERE account = ?`,
}

// wtx is the writer's view of the current transaction. It is used by the
// writer goroutine only.
type wtx struct {
	db       *DB
	ctx      context.Context
	tx       *sql.Tx
	stmts    [numStmts]*sql.Stmt // prepared on the write connection
	txStmts  [numStmts]*sql.Stmt // stmts bound to tx, made on first use
	touched  []logHead           // heads to sign at the end of the transaction
	appended []logHead           // heads appended to by the current request
	buf      []byte              // scratch for event data

	// For replication (replica_write.go); all but appendedServer are
	// used with a replicator only.
	req            int            // index in the batch of the current request
	appendedServer []string       // server logs appended to by the current request
	marked         []logKey       // logs PushPending asks to replicate, by the current request
	logs           []replLog      // logs to replicate at the end of the transaction
	logIdx         map[logKey]int // index in logs
	reqLogs        []reqLog       // which request changed which log
}

func newWtx(ctx context.Context, db *DB) (*wtx, error) {
	t := &wtx{db: db, ctx: context.Background(), touched: make([]logHead, 0, maxBatch)}
	for i, q := range stmtSQL {
		st, err := db.w.PrepareContext(ctx, q)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		t.stmts[i] = st
	}
	return t, nil
}

func (t *wtx) close() {
	for _, st := range t.stmts {
		if st != nil {
			st.Close()
		}
	}
}

// begin binds t to a new transaction.
func (t *wtx) begin(tx *sql.Tx) {
	t.tx = tx
	t.txStmts = [numStmts]*sql.Stmt{}
}

func (t *wtx) stmt(i int) *sql.Stmt {
	if st := t.txStmts[i]; st != nil {
		return st
	}
	st := t.tx.StmtContext(t.ctx, t.stmts[i])
	t.txStmts[i] = st
	return st
}

func (t *wtx) exec(i int, args ...any) (sql.Result, error) {
	return t.stmt(i).ExecContext(t.ctx, args...)
}

func (t *wtx) queryRow(i int, args ...any) *sql.Row {
	return t.stmt(i).QueryRowContext(t.ctx, args...)
}

// accountExists reports whether the accounts view holds user.
func (t *wtx) accountExists(user string) (bool, error) {
	var one int
	err := t.queryRow(sAccountExists, user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up account: %w", err)
	}
	return true, nil
}

// mustExist returns storage.ErrNotFound unless user has an account.
func (t *wtx) mustExist(user string) error {
	ok, err := t.accountExists(user)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("account %q: %w", user, storage.ErrNotFound)
	}
	return nil
}

// append appends an event to account's log, reading the head of the log
// inside the transaction, and returns its seq and time.
func (t *wtx) append(account, typ string, data []byte) (seq uint64, unixNano int64, err error) {
	var prevSeq uint64
	var prev []byte
	err = t.queryRow(sLogHead, account).Scan(&prevSeq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("read log head: %w", err)
	}
	if prev == nil {
		prev = []byte{}
	}
	seq = prevSeq + 1
	unixNano = time.Now().UnixNano()
	h := storage.HashEvent(prev, seq, typ, data, unixNano)
	if _, err := t.exec(sInsertEvent, account, int64(seq), typ, data, unixNano, prev, h[:]); err != nil {
		return 0, 0, fmt.Errorf("append %s event: %w", typ, err)
	}
	t.appended = setHead(t.appended, logHead{account: account, seq: seq, hash: h})
	return seq, unixNano, nil
}

// appendServer appends an event to the server log named log (see
// storage.ServerLogFederation), reading the head of the log inside the
// transaction. Server logs are hash-linked like account logs but have no key,
// so their heads are not signed.
func (t *wtx) appendServer(log, typ string, data []byte) error {
	var prevSeq uint64
	var prev []byte
	err := t.queryRow(sServerLogHead, log).Scan(&prevSeq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read %s log head: %w", log, err)
	}
	if prev == nil {
		prev = []byte{}
	}
	seq := prevSeq + 1
	unixNano := time.Now().UnixNano()
	h := storage.HashEvent(prev, seq, typ, data, unixNano)
	if _, err := t.exec(sInsertServerEvent, log, int64(seq), typ, data, unixNano, prev, h[:]); err != nil {
		return fmt.Errorf("append %s event: %w", typ, err)
	}
	t.appendedServer = append(t.appendedServer, log)
	return nil
}

// logHead is the last event of an account's log within the current
// transaction.
type logHead struct {
	account string
	seq     uint64
	hash    [sha256.Size]byte
}

// signHead signs h with the account's key and stores it as the head of the
// account's log.
func (t *wtx) signHead(h *logHead) error {
	var priv []byte
	if err := t.queryRow(sPrivateKey, h.account).Scan(&priv); err != nil {
		return fmt.Errorf("read account key: %w", err)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("account key: %w", storage.ErrCorrupt)
	}
	sig := ed25519.Sign(ed25519.PrivateKey(priv), storage.HeadMessage(h.account, h.seq, h.hash[:]))
	if _, err := t.exec(sUpsertHead, h.account, int64(h.seq), h.hash[:], sig); err != nil {
		return fmt.Errorf("store log head: %w", err)
	}
	return nil
}
