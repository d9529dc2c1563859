// Package sqlite stores account logs and their views in one SQLite file
// (modernc.org/sqlite, pure Go).
//
// # Model
//
// Every durable change to an account is an event appended to its log (table
// events); the views (accounts with their roles, roster, offline, vcards) are
// updated from the event in the same transaction, and [DB.RebuildViews]
// recomputes them from the logs. Server-wide state has server logs (table
// server_events, hash-linked, not signed): the federation domain lists, with
// the view federation_domains.
// After each commit that touched an account, the head of its log is signed
// with the account's Ed25519 key (table heads). See package storage for the
// hash and signature formats.
//
// # Writes: group commit
//
// One writer goroutine owns the write connection. Each change is a request;
// the writer takes all pending requests (up to maxBatch), applies them in one
// BEGIN IMMEDIATE transaction, each inside its own SAVEPOINT so that one
// failing request does not fail the others, commits (with synchronous=FULL,
// so the commit is fsync'd) and answers each caller. Many appends thus share
// one fsync.
//
// # Several processes
//
// The same file may be opened by several processes at once (the server and
// the `casp3r user` command). Nothing read from the database is kept in
// memory across transactions: log heads, roster versions and quotas are read
// inside the write transaction, which holds SQLite's write lock from BEGIN
// IMMEDIATE on. busy_timeout makes a writer wait for another process's
// transaction instead of failing.
//
// # Reads
//
// Reads use a separate pool of read-only connections; WAL mode lets them run
// while the writer writes.
//
// # Replication
//
// In a cluster, several nodes serve one XMPP domain, each with its own
// database. [DB.SetReplicator] gives a DB a [Replicator]: a shared log (the
// cluster's, replicated by JetStream in the server) made of one ordered
// sequence of entries, each at a position, each belonging to a key: "a:" +
// account for an account's log, "s:" + name for a server log. A write then
// commits locally only once the shared log holds it:
//
//   - At the end of a batch, after the requests ran and the heads were
//     signed, the writer builds one entry per log that grew: every local event
//     after the last replicated one (so that events written without a
//     replicator ride along), the signed head, and the account's key pair when
//     the events create the account. It appends the entries with
//     Replicator.Replicate, concurrently, each expecting its log's last
//     position to be the one recorded here (table replicated). If all are
//     appended, their positions are recorded and the batch commits. If one is
//     refused, the batch rolls back; the entries that were appended are applied
//     at once as the other nodes apply them (so their requests succeed), and
//     the other requests fail. A request that failed with storage.ErrConflict
//     (another node appended to its log first) is run again after
//     Replicator.Sync, up to 5 times.
//   - Every node gives every entry, its own included, in position order, to
//     [DB.ApplyReplicated], which appends the events it does not have yet,
//     updates the views and records the position as its cursor (table
//     replica_cursor). Events it has must be the same; new ones must continue
//     the local log, hash and head signature checked. An entry that does not
//     (a fork: the log was written on two nodes without replication, or a
//     forgery) is skipped with an error wrapping storage.ErrCorrupt. Entries
//     are committed in transactions of their own, before the local writes
//     queued with them, which then build on them.
//   - [DB.PushPending] ships the logs written by another process without a
//     replicator (the `casp3r user` command), or before the node joined a
//     cluster.
//   - [DB.ViewsDigest] summarizes the views and heads, so that nodes can be
//     compared.
//
// An entry is JSON (version 1):
//
//	{"v":1, "kind":"a"|"s", "name":account or server log name,
//	 "events":[{"seq":n, "type":t, "data":JSON or "data64":base64,
//	            "time":Unix ns, "prev":base64, "hash":base64}, ...],
//	 "sig":base64 head signature (accounts),
//	 "key":{"public":base64, "private":base64} (with account-created)}
//
// It carries the account's private key: the carrier encrypts entries.
// A write whose Replicate fails with another error than a conflict (a
// timeout, an unreachable cluster) is reported failed, but its entry may
// have been appended all the same; it then arrives through ApplyReplicated.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"casp3r/internal/storage"
)

const (
	// maxBatch is the largest number of requests applied in one transaction.
	maxBatch = 256
	// busyTimeoutMS is how long a connection waits for another connection
	// (possibly in another process) to release a lock.
	busyTimeoutMS = 10000
	// readConns is the size of the read pool.
	readConns = 4
	// cacheKB is each connection's page cache, in KiB (SQLite's default is
	// 2 MB). The operating system caches the file too; with SQLite's
	// default the cache of 5 connections filled as users logged in and
	// cost about 1.5 KB per client at 1,000 clients (docs/PERFORMANCE.md).
	cacheKB = 256
)

// DB is an open SQLite store. It is safe for concurrent use.
type DB struct {
	path   string  // absolute path of the database file
	w      *sql.DB // one connection, owned by the writer goroutine
	r      *sql.DB // read pool
	logger *slog.Logger

	mu     sync.RWMutex // guards closed and sends on reqs
	closed bool
	reqs   chan *request
	done   chan struct{} // closed when the writer has exited

	reqPool sync.Pool

	failBegin atomic.Pointer[error] // tests: the next transaction fails to begin with it

	repl   Replicator // nil: single node (see SetReplicator)
	pushMu sync.Mutex // serializes PushPending
	pushed [2]int64   // max rowids of events and server_events known replicated (PushPending)

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // kept read statements (stmt.go)

	commits  atomic.Uint64
	requests atomic.Uint64
	received atomic.Uint64 // requests taken off reqs by the writer (for tests)
}

// Stats are counters of a DB since it was opened.
type Stats struct {
	// Commits is the number of write transactions committed.
	Commits uint64
	// Requests is the number of write requests applied (including those
	// that failed and were rolled back to their savepoint).
	Requests uint64
}

// Stats returns the counters of db.
func (db *DB) Stats() Stats {
	return Stats{Commits: db.commits.Load(), Requests: db.requests.Load()}
}

// dsn returns the data source name of path for the modernc driver. write
// selects BEGIN IMMEDIATE transactions; readOnly, query_only connections.
func dsn(path string, write, readOnly bool) string {
	// SQLite URI filenames decode %XX escapes and end at '?' or '#'.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	q := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=cache_size(-%d)", busyTimeoutMS, cacheKB)
	if write {
		q += "&_txlock=immediate"
	}
	if readOnly {
		q += "&_pragma=query_only(1)"
	}
	return "file:" + esc + "?" + q
}

// Open opens the store in the SQLite file at path, creating the file and
// its schema if missing and migrating an older schema. logger may be nil.
func Open(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	w, err := sql.Open("sqlite", dsn(abs, true, false))
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open storage %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(abs, false, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open storage: %w", err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open storage %s: %w", path, err)
	}
	db := &DB{
		path:   abs,
		w:      w,
		r:      r,
		logger: logger,
		reqs:   make(chan *request, maxBatch),
		done:   make(chan struct{}),
	}
	db.reqPool.New = func() any { return &request{done: make(chan error, 1)} }
	t, err := newWtx(ctx, db)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open storage %s: %w", path, err)
	}
	go db.run(t)
	return db, nil
}

// Close waits for the pending writes to commit, then closes the database.
// Calls made after Close return storage.ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	close(db.reqs)
	db.mu.Unlock()
	<-db.done
	return errors.Join(db.closeStmts(), db.w.Close(), db.r.Close())
}

// request is one change submitted to the writer.
type request struct {
	ctx   context.Context
	fn    func(*wtx) error // applies the change inside a savepoint
	apply bool             // an entry of the shared log (ApplyReplicated)
	done  chan error       // buffered (1): the outcome
}

// maxConflicts bounds the attempts of a write that conflicts with another
// node's (see write).
const maxConflicts = 5

// write submits a change to the writer and waits until the transaction that
// applied it has committed. fn runs on the writer goroutine, inside a
// savepoint of the batch's transaction: when it returns an error, its
// changes are rolled back and the error is returned to the caller. ctx is
// checked before fn runs; once fn has run the caller waits for the outcome of
// the commit, so that a change is never reported failed when it committed.
//
// With a replicator, a write that failed because another node appended to
// the same log first (storage.ErrConflict) is run again once this node has
// caught up with the shared log (Replicator.Sync), up to maxConflicts times
// in all; fn must therefore give the same change when run again on the newer
// state.
func (db *DB) write(ctx context.Context, fn func(*wtx) error) error {
	err := db.submit(ctx, fn, false)
	if db.repl == nil || err == nil {
		return err
	}
	for n := 1; n < maxConflicts && errors.Is(err, storage.ErrConflict); n++ {
		if serr := db.repl.Sync(ctx); serr != nil {
			return fmt.Errorf("sync with the cluster: %w (after %w)", serr, err)
		}
		err = db.submit(ctx, fn, false)
	}
	return err
}

// submit hands fn to the writer and waits for its outcome (see write).
// apply marks an entry of the shared log, which the writer commits apart
// from local changes.
func (db *DB) submit(ctx context.Context, fn func(*wtx) error, apply bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := db.reqPool.Get().(*request)
	r.ctx, r.fn, r.apply = ctx, fn, apply
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		r.ctx, r.fn = nil, nil
		db.reqPool.Put(r)
		return storage.ErrClosed
	}
	db.reqs <- r
	db.mu.RUnlock()
	err := <-r.done
	r.ctx, r.fn = nil, nil
	db.reqPool.Put(r)
	return err
}

// submitAll hands fns to the writer one after the other without waiting,
// so that it commits them together as far as its batches allow, and
// returns the outcome of each.
func (db *DB) submitAll(ctx context.Context, fns []func(*wtx) error, apply bool) []error {
	errs := make([]error, len(fns))
	reqs := make([]*request, 0, len(fns))
	db.mu.RLock()
	for i, fn := range fns {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if db.closed {
			errs[i] = storage.ErrClosed
			continue
		}
		r := db.reqPool.Get().(*request)
		r.ctx, r.fn, r.apply = ctx, fn, apply
		db.reqs <- r
		reqs = append(reqs, r)
	}
	db.mu.RUnlock()
	k := 0
	for i := range errs {
		if errs[i] != nil {
			continue
		}
		r := reqs[k]
		k++
		errs[i] = <-r.done
		r.ctx, r.fn = nil, nil
		db.reqPool.Put(r)
	}
	return errs
}

// run is the writer goroutine: it applies batches of requests until reqs is
// closed and drained.
func (db *DB) run(t *wtx) {
	defer close(db.done)
	batch := make([]*request, 0, maxBatch)
	errs := make([]error, 0, maxBatch)
	for r := range db.reqs {
		batch = append(batch[:0], r)
		db.received.Add(1)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
				db.received.Add(1)
			default:
				break fill
			}
		}
		if k := db.applyFirst(batch); k > 0 && k < len(batch) {
			// Entries of the shared log commit first and apart: a
			// failure to replicate the local changes must not undo
			// them, and the local changes then build on them.
			errs = db.commit(t, batch[:k], errs[:0])
			errs = db.commit(t, batch[k:], errs)
		} else {
			errs = db.commit(t, batch, errs[:0])
		}
		for i, r := range batch {
			r.done <- errs[i]
			batch[i] = nil
		}
	}
	t.close()
}

// applyFirst moves the requests of batch that apply entries of the shared
// log before the others, keeping the order within each group, and returns
// how many there are. Without a replicator it does nothing.
func (db *DB) applyFirst(batch []*request) int {
	if db.repl == nil {
		return 0
	}
	k := 0
	for i, r := range batch {
		if r.apply {
			copy(batch[k+1:i+1], batch[k:i])
			batch[k] = r
			k++
		}
	}
	return k
}

// commit applies batch in one transaction and returns the outcome of each
// request (appended to errs). With a replicator, the logs that grew are
// appended to the shared log before the commit (see commitReplicated).
func (db *DB) commit(t *wtx, batch []*request, errs []error) []error {
	ctx := context.Background() // a caller's cancellation must not abort the batch
	base := len(errs)
	fail := func(err error) []error {
		errs = errs[:base]
		for range batch {
			errs = append(errs, err)
		}
		return errs
	}
	tx, err := db.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if p := db.failBegin.Swap(nil); p != nil && err == nil {
		_ = tx.Rollback()
		err = *p
	}
	if err != nil {
		db.logger.Error("storage: begin", "err", err)
		return fail(fmt.Errorf("begin: %w", err))
	}
	t.begin(tx)
	t.touched = t.touched[:0] // heads of the logs that grew in this transaction
	if db.repl != nil {
		t.resetLogs()
	}
	for i, r := range batch {
		t.req = i
		if err := r.ctx.Err(); err != nil {
			errs = append(errs, err)
			continue
		}
		db.requests.Add(1)
		if _, err := t.exec(sSavepoint); err != nil {
			_ = tx.Rollback() // the batch fails with err
			return fail(fmt.Errorf("savepoint: %w", err))
		}
		t.appended = t.appended[:0]
		t.appendedServer = t.appendedServer[:0]
		t.marked = t.marked[:0]
		rerr := r.fn(t)
		if rerr != nil {
			if _, err := t.exec(sRollbackTo); err != nil {
				_ = tx.Rollback() // the batch fails with err
				return fail(fmt.Errorf("rollback to savepoint: %w (after %w)", err, rerr))
			}
		} else {
			for _, h := range t.appended {
				t.touched = setHead(t.touched, h)
			}
			if db.repl != nil {
				t.noteLogs()
			}
		}
		if _, err := t.exec(sRelease); err != nil {
			_ = tx.Rollback() // the batch fails with err
			return fail(fmt.Errorf("release savepoint: %w", err))
		}
		errs = append(errs, rerr)
	}
	for i := range t.touched {
		if err := t.signHead(&t.touched[i]); err != nil {
			// Only a damaged database gets here (a log without its key):
			// the changes still commit and VerifyLog reports the stale head.
			db.logger.Error("storage: sign log head", "account", t.touched[i].account, "err", err)
		}
	}
	if db.repl != nil && len(t.logs) > 0 {
		return db.commitReplicated(t, tx, batch, errs, base)
	}
	if err := tx.Commit(); err != nil {
		db.logger.Error("storage: commit", "err", err)
		// A failed COMMIT may leave the transaction open on the
		// connection; end it so that the next batch can begin.
		if _, err := db.w.ExecContext(ctx, "ROLLBACK"); err != nil {
			db.logger.Debug("storage: rollback after failed commit", "err", err)
		}
		return fail(fmt.Errorf("commit: %w", err))
	}
	db.commits.Add(1)
	return errs
}

// setHead sets the head of h.account in heads to h.
func setHead(heads []logHead, h logHead) []logHead {
	for i := range heads {
		if heads[i].account == h.account {
			heads[i] = h
			return heads
		}
	}
	return append(heads, h)
}
