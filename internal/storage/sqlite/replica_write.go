package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"casp3r/internal/storage"
)

// replicateTimeout bounds the Replicate calls of one batch, which the writer
// waits for while it holds SQLite's write lock.
const replicateTimeout = 30 * time.Second

// maxInFlight bounds the concurrent Replicate calls of one batch (PushPending
// may push thousands of logs at once).
const maxInFlight = 64

// logKey names a log: kindAccount or kindServer, and the account or server
// log name.
type logKey struct {
	kind string
	name string
}

// replLog is a log to replicate at the end of a transaction.
type replLog struct {
	logKey
	key   string // name of the shared log
	last  uint64 // position of its last entry, 0 if none
	entry entry  // the local events after the last replicated one
	data  []byte // entry, encoded; nil when there is nothing to replicate
	pos   uint64 // position of the new entry
	err   error
}

// reqLog records that request req of the batch changed logs[log].
type reqLog struct{ req, log int }

// resetLogs forgets the logs of the previous batch.
func (t *wtx) resetLogs() {
	clear(t.logs) // drop the previous entries' memory
	t.logs = t.logs[:0]
	clear(t.logIdx)
	t.reqLogs = t.reqLogs[:0]
}

// noteLogs records the logs that the current request, which succeeded,
// changed or marked.
func (t *wtx) noteLogs() {
	for i := range t.appended {
		t.noteLog(logKey{kindAccount, t.appended[i].account})
	}
	for _, l := range t.appendedServer {
		t.noteLog(logKey{kindServer, l})
	}
	for _, k := range t.marked {
		t.noteLog(k)
	}
}

func (t *wtx) noteLog(k logKey) {
	i, ok := t.logIdx[k]
	if !ok {
		if t.logIdx == nil {
			t.logIdx = make(map[logKey]int)
		}
		i = len(t.logs)
		t.logs = append(t.logs, replLog{logKey: k, key: k.kind + ":" + k.name})
		t.logIdx[k] = i
	}
	t.reqLogs = append(t.reqLogs, reqLog{t.req, i})
}

// commitReplicated ends the transaction of batch, whose requests changed
// t.logs, when db has a replicator: each log's new events are appended to
// the shared log, concurrently, and the transaction commits (with the new
// positions) only if all of them were. Otherwise it rolls back, the entries
// that did reach the shared log are applied as another node would apply
// them, and each request gets its own outcome (see outcomes).
func (db *DB) commitReplicated(t *wtx, tx *sql.Tx, batch []*request, errs []error, base int) []error {
	ctx := context.Background()
	for i := range t.logs {
		t.buildEntry(&t.logs[i])
	}
	db.replicateAll(t.logs)
	var failed error // the first failure, a conflict only if all are
	for i := range t.logs {
		if err := t.logs[i].err; err != nil && (failed == nil || errors.Is(failed, storage.ErrConflict)) {
			failed = err
		}
	}
	if failed == nil {
		err := t.recordReplicated()
		if err == nil {
			if err = tx.Commit(); err == nil {
				db.commits.Add(1)
				return errs
			}
			err = fmt.Errorf("commit: %w", err)
			// A failed COMMIT may leave the transaction open.
			if _, rerr := db.w.ExecContext(ctx, "ROLLBACK"); rerr != nil {
				db.logger.Debug("storage: rollback after failed commit", "err", rerr)
			}
		} else {
			_ = tx.Rollback() // the batch is applied again below
		}
		db.logger.Error("storage: commit of replicated batch", "err", err)
		// Every entry is in the shared log: apply them here too.
		return t.outcomes(errs, base, len(batch), db.applyOwn(t), nil)
	}
	if err := tx.Rollback(); err != nil {
		db.logger.Error("storage: rollback", "err", err)
	}
	return t.outcomes(errs, base, len(batch), db.applyOwn(t), failed)
}

// outcomes sets the outcome of each request of a batch that did not commit
// as a whole: a request whose logs all reached the shared log succeeded
// (once applyOwn applied them: fixErr); one whose logs all failed gets the
// first failure, which is a conflict to retry after Sync or another error;
// one with some logs in the shared log and some not fails without a retry,
// as running it again would repeat its replicated part. A request that
// changed no log gets noLogErr if not nil: what it read may have been
// rolled back.
func (t *wtx) outcomes(errs []error, base, n int, fixErr, noLogErr error) []error {
	for i := range n {
		var ok, failed int
		var first error
		for _, rl := range t.reqLogs {
			if rl.req != i {
				continue
			}
			if err := t.logs[rl.log].err; err != nil {
				failed++
				if first == nil {
					first = err
				}
			} else {
				ok++
			}
		}
		e := &errs[base+i]
		switch {
		case ok == 0 && failed == 0:
			if noLogErr != nil {
				*e = noLogErr
			}
		case failed == 0:
			*e = fixErr
		case ok == 0:
			*e = first
		default:
			*e = fmt.Errorf("change only partly replicated: %v", first) // no retry
		}
	}
	return errs
}

// buildEntry reads the events of l after the last replicated one into
// l.entry and encodes it; l.data stays nil when there are none.
func (t *wtx) buildEntry(l *replLog) {
	l.data, l.pos, l.err = nil, 0, nil
	var rseq uint64
	err := t.queryRow(sReplicated, l.key).Scan(&l.last, &rseq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		l.err = fmt.Errorf("%s: read replicated position: %w", l.key, err)
		return
	}
	acct := l.kind == kindAccount
	q := sEventsAfter
	if !acct {
		q = sServerEventsAfter
	}
	rows, err := t.stmt(q).QueryContext(t.ctx, l.name, int64(rseq))
	if err != nil {
		l.err = fmt.Errorf("%s: read log: %w", l.key, err)
		return
	}
	defer rows.Close()
	e := &l.entry
	*e = entry{V: entryVersion, Kind: l.kind, Name: l.name}
	created := false
	for rows.Next() {
		var ev entryEvent
		var d []byte
		if err := rows.Scan(&ev.Seq, &ev.Type, &d, &ev.Time, &ev.Prev, &ev.Hash); err != nil {
			l.err = fmt.Errorf("%s: read log: %w", l.key, err)
			return
		}
		ev.setData(d)
		created = created || ev.Type == storage.EventAccountCreated
		e.Events = append(e.Events, ev)
	}
	if err := rows.Err(); err != nil {
		l.err = fmt.Errorf("%s: read log: %w", l.key, err)
		return
	}
	rows.Close()
	if len(e.Events) == 0 {
		return
	}
	if acct {
		var seq uint64
		if err := t.queryRow(sHeadSig, l.name).Scan(&seq, &e.Sig); err != nil {
			l.err = fmt.Errorf("%s: read signed head: %w", l.key, err)
			return
		}
		if last := e.Events[len(e.Events)-1].Seq; seq != last {
			l.err = fmt.Errorf("%s: signed head %d is not the last event %d: %w", l.key, seq, last, storage.ErrCorrupt)
			return
		}
		if created {
			k := new(entryKey)
			if err := t.queryRow(sAccountKeys, l.name).Scan(&k.Public, &k.Private); err != nil {
				l.err = fmt.Errorf("%s: read account key: %w", l.key, err)
				return
			}
			e.Key = k
		}
	}
	l.data, l.err = encodeEntry(e)
}

// replicateAll appends the entries of logs to the shared log, concurrently,
// and sets each log's pos or err.
func (db *DB) replicateAll(logs []replLog) {
	ctx, cancel := context.WithTimeout(context.Background(), replicateTimeout)
	defer cancel()
	one := func(l *replLog) {
		pos, err := db.repl.Replicate(ctx, l.key, l.last, l.data)
		switch {
		case err != nil:
			l.err = fmt.Errorf("replicate %s: %w", l.key, err)
		case pos <= l.last:
			l.err = fmt.Errorf("replicate %s: position %d after %d", l.key, pos, l.last)
		default:
			l.pos = pos
		}
	}
	var wg sync.WaitGroup
	var inline *replLog
	var sem chan struct{}
	for i := range logs {
		l := &logs[i]
		if l.err != nil || l.data == nil {
			continue
		}
		if inline == nil {
			inline = l // the writer does one itself
			continue
		}
		if sem == nil {
			sem = make(chan struct{}, maxInFlight)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			one(l)
		})
	}
	if inline != nil {
		one(inline)
	}
	wg.Wait()
}

// recordReplicated stores the new position of each replicated log.
func (t *wtx) recordReplicated() error {
	for i := range t.logs {
		l := &t.logs[i]
		if l.data == nil {
			continue
		}
		last := l.entry.Events[len(l.entry.Events)-1].Seq
		if _, err := t.exec(sUpsertReplicated, l.key, int64(l.pos), int64(last)); err != nil {
			return fmt.Errorf("%s: store replicated position: %w", l.key, err)
		}
	}
	return nil
}

// applyOwn applies, in a transaction of its own, the entries of t.logs that
// reached the shared log, after the batch that made them was rolled back.
func (db *DB) applyOwn(t *wtx) error {
	n := 0
	for i := range t.logs {
		if t.logs[i].err == nil && t.logs[i].data != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	ctx := context.Background()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply replicated changes: begin: %w", err)
	}
	t.begin(tx)
	for i := range t.logs {
		l := &t.logs[i]
		if l.err != nil || l.data == nil {
			continue
		}
		if err := t.applyEntry(&l.entry, l.pos, new(Applied)); err != nil {
			_ = tx.Rollback() // the applier brings the entries later
			return fmt.Errorf("apply replicated changes: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		if _, rerr := db.w.ExecContext(ctx, "ROLLBACK"); rerr != nil {
			db.logger.Debug("storage: rollback after failed commit", "err", rerr)
		}
		return fmt.Errorf("apply replicated changes: commit: %w", err)
	}
	db.commits.Add(1)
	return nil
}

// PushPending replicates every log whose events are not all in the shared
// log yet: those written by another process without a replicator (the
// `casp3r user` command) or before db joined a cluster. It returns how many
// logs it pushed. When nothing was written since the last call it costs one
// indexed query. It needs a replicator (SetReplicator).
func (db *DB) PushPending(ctx context.Context) (int, error) {
	if db.repl == nil {
		return 0, errors.New("push pending: no replicator")
	}
	db.pushMu.Lock()
	defer db.pushMu.Unlock()
	// Rowids grow with every event appended (events are never deleted),
	// so the largest ones tell whether anything was written since the
	// last call.
	var ev, sv sql.NullInt64
	err := db.queryRow(ctx, `SELECT (SELECT max(rowid) FROM events), (SELECT max(rowid) FROM server_events)`).Scan(&ev, &sv)
	if err != nil {
		return 0, fmt.Errorf("push pending: %w", err)
	}
	marks := [2]int64{ev.Int64, sv.Int64}
	if marks == db.pushed {
		return 0, nil
	}
	keys, err := db.pendingLogs(ctx, db.pushed)
	if err != nil {
		return 0, fmt.Errorf("push pending: %w", err)
	}
	n := 0
	if len(keys) > 0 {
		err = db.write(ctx, func(t *wtx) error {
			n = 0
			for _, k := range keys {
				ok, err := t.pending(k)
				if err != nil {
					return err
				}
				if ok {
					t.marked = append(t.marked, k)
					n++
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("push pending: %w", err)
		}
	}
	db.pushed = marks
	return n, nil
}

// pendingLogs returns the logs with events of rowid above after's that are
// not all replicated.
func (db *DB) pendingLogs(ctx context.Context, after [2]int64) ([]logKey, error) {
	rows, err := db.query(ctx, `
SELECT 'a', account FROM events WHERE rowid > ?1 GROUP BY account
	HAVING max(seq) > coalesce((SELECT seq FROM replicated WHERE log = 'a:' || account), 0)
UNION ALL
SELECT 's', log FROM server_events WHERE rowid > ?2 GROUP BY log
	HAVING max(seq) > coalesce((SELECT seq FROM replicated WHERE log = 's:' || log), 0)`,
		after[0], after[1])
	if err != nil {
		return nil, fmt.Errorf("find pending logs: %w", err)
	}
	defer rows.Close()
	var keys []logKey
	for rows.Next() {
		var k logKey
		if err := rows.Scan(&k.kind, &k.name); err != nil {
			return nil, fmt.Errorf("find pending logs: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find pending logs: %w", err)
	}
	return keys, nil
}

// pending reports whether the log k has events after the last replicated
// one.
func (t *wtx) pending(k logKey) (bool, error) {
	head := sLogHead
	if k.kind == kindServer {
		head = sServerLogHead
	}
	var seq, rpos, rseq uint64
	var hash []byte
	err := t.queryRow(head, k.name).Scan(&seq, &hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("read log head: %w", err)
	}
	err = t.queryRow(sReplicated, k.kind+":"+k.name).Scan(&rpos, &rseq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("read replicated position: %w", err)
	}
	return seq > rseq, nil
}
