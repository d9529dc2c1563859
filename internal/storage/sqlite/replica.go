package sqlite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"casp3r/internal/storage"
)

// Replicator shares the logs with the other nodes of a cluster (see the
// package doc, "Replication").
type Replicator interface {
	// Replicate appends entry to the shared log named key, provided its
	// last entry is at position last (0: the shared log has no entry yet),
	// and returns the new entry's position (positions grow, are unique
	// across all keys, and are never 0). When the shared log's last
	// position is not last (another node appended first) it returns an
	// error wrapping storage.ErrConflict.
	Replicate(ctx context.Context, key string, last uint64, entry []byte) (pos uint64, err error)
	// Sync returns once every entry appended to the shared logs before the
	// call has been applied to this DB with ApplyReplicated.
	Sync(ctx context.Context) error
}

// SetReplicator makes db one node of a cluster: from then on every write is
// appended to the shared log through r before it commits. Call it once,
// before concurrent use of db. A nil r (the default) keeps db a single node.
func (db *DB) SetReplicator(r Replicator) {
	db.repl = r
}

// Keys of the shared logs and kinds of entries.
const (
	kindAccount   = "a" // an account's log; key "a:" + account name
	kindServer    = "s" // a server log; key "s:" + log name
	entryVersion  = 1
	maxEntryBytes = 64 << 20 // refuse to decode larger entries
)

// entry is the envelope of one entry of the shared log (version 1): the
// events of one log after the last replicated one. See the package doc.
type entry struct {
	V      int          `json:"v"`
	Kind   string       `json:"kind"` // kindAccount or kindServer
	Name   string       `json:"name"` // account or server log name
	Events []entryEvent `json:"events"`
	Sig    []byte       `json:"sig,omitempty"` // head signature of the last event (accounts)
	Key    *entryKey    `json:"key,omitempty"` // the account's key, when Events hold account-created
}

// entryEvent is one event of an entry. Data is the event's JSON verbatim
// when it is compact, valid UTF-8 JSON (as the events written by this
// package are), else Data64 holds it: the hash covers the exact bytes.
type entryEvent struct {
	Seq    uint64          `json:"seq"`
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data,omitempty"`
	Data64 []byte          `json:"data64,omitempty"`
	Time   int64           `json:"time"` // Unix nanoseconds
	Prev   []byte          `json:"prev"`
	Hash   []byte          `json:"hash"`
}

type entryKey struct {
	Public  []byte `json:"public"`
	Private []byte `json:"private"`
}

func (ev *entryEvent) data() []byte {
	if ev.Data != nil {
		return ev.Data
	}
	if ev.Data64 != nil {
		return ev.Data64
	}
	return []byte{}
}

func (ev *entryEvent) setData(d []byte) {
	if utf8.Valid(d) && json.Valid(d) && compactJSON(d) {
		ev.Data, ev.Data64 = d, nil
	} else {
		ev.Data, ev.Data64 = nil, d
	}
}

// compactJSON reports whether the valid JSON text d has no whitespace
// outside strings, so that the encoder copies it verbatim.
func compactJSON(d []byte) bool {
	in, esc := false, false
	for _, c := range d {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

// key returns the name of e's shared log.
func (e *entry) key() string { return e.Kind + ":" + e.Name }

// encodeEntry returns the JSON of e. HTML escaping is off, so that the
// encoder copies compact event data verbatim (the hashes cover its bytes).
func encodeEntry(e *entry) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("encode entry: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// decodeEntry decodes and checks the form of an entry. Its errors wrap
// storage.ErrCorrupt.
func decodeEntry(b []byte) (entry, error) {
	var e entry
	if len(b) > maxEntryBytes {
		return e, fmt.Errorf("entry of %d bytes: %w", len(b), storage.ErrCorrupt)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("decode entry: %v: %w", err, storage.ErrCorrupt)
	}
	switch {
	case e.V != entryVersion:
		return e, fmt.Errorf("entry version %d (want %d): %w", e.V, entryVersion, storage.ErrCorrupt)
	case e.Kind != kindAccount && e.Kind != kindServer:
		return e, fmt.Errorf("entry kind %q: %w", e.Kind, storage.ErrCorrupt)
	case e.Name == "":
		return e, fmt.Errorf("entry without a log name: %w", storage.ErrCorrupt)
	case len(e.Events) == 0:
		return e, fmt.Errorf("entry of %s without events: %w", e.key(), storage.ErrCorrupt)
	}
	return e, nil
}

// ApplyReplicated applies the entry of the shared log at position pos to
// db: the events db does not have yet are appended to their log and applied
// to the views, and pos becomes db's apply cursor (see ReplicaCursor), in one
// transaction. Entries must be given in position order; one at or below the
// cursor is skipped, so replaying entries is harmless. Events db already has
// must be the same (same hash); the new ones must continue the local log
// with correct hashes and, for an account, a valid head signature. An entry
// that fails these checks (a fork, a forgery) is not applied, the cursor
// still moves past it, and the error wraps storage.ErrCorrupt. The result
// tells what the entry added.
func (db *DB) ApplyReplicated(ctx context.Context, pos uint64, data []byte) (Applied, error) {
	got, errs := db.ApplyReplicatedBatch(ctx, []Replicated{{Pos: pos, Data: data}})
	return got[0], errs[0]
}

// errEarlierNotApplied refuses an entry after one that was not applied.
var errEarlierNotApplied = errors.New("an earlier entry of the batch was not applied")

// Replicated is an entry of the shared log at position Pos.
type Replicated struct {
	Pos  uint64
	Data []byte
}

// ApplyReplicatedBatch applies entries, in position order, as ApplyReplicated
// applies each, but hands them to the writer together, so that they commit
// in as few transactions (and fsyncs) as the writer's batches allow. It
// returns what each entry added and its error. After an entry that fails
// for a reason other than storage.ErrCorrupt, the entries after it are not
// applied (they get the same error), so that the cursor never moves past
// an entry that was not applied.
func (db *DB) ApplyReplicatedBatch(ctx context.Context, entries []Replicated) ([]Applied, []error) {
	got := make([]Applied, len(entries))
	errs := make([]error, len(entries))
	fns := make([]func(*wtx) error, len(entries))
	// On the writer: the first failure other than ErrCorrupt; the index of
	// the entry expected next; the highest position applied so far. The
	// writer may split the entries over several transactions, and one may
	// fail as a whole (begin, commit): an entry whose predecessors did not
	// all run, or whose applied predecessors are not in the cursor, stops
	// the rest, so that the cursor never passes an entry not applied.
	var stop error
	var next int
	var want uint64
	for i, re := range entries {
		pos := re.Pos
		e, derr := decodeEntry(re.Data)
		fns[i] = func(t *wtx) error {
			got[i] = Applied{}
			if stop != nil {
				return stop
			}
			err := func() error {
				if pos == 0 {
					return errors.New("position 0")
				}
				cur, err := t.cursor()
				if err != nil {
					return err
				}
				if i != next || cur < want {
					return errEarlierNotApplied
				}
				next = i + 1
				if pos <= cur {
					return nil
				}
				if derr != nil {
					return derr
				}
				if err := t.applyEntry(&e, pos, &got[i]); err != nil {
					return err
				}
				want = pos
				return t.setCursor(pos)
			}()
			if err != nil && !errors.Is(err, storage.ErrCorrupt) {
				stop = err
			}
			return err
		}
	}
	var corruptAt uint64 // the last corrupt entry before any other failure
	failed := false
	for i, err := range db.submitAll(ctx, fns, true) {
		if err != nil {
			got[i] = Applied{}
			errs[i] = fmt.Errorf("apply replicated entry %d: %w", entries[i].Pos, err)
			switch {
			case !errors.Is(err, storage.ErrCorrupt):
				failed = true
			case !failed:
				corruptAt = entries[i].Pos
			}
		}
	}
	if corruptAt > 0 {
		// Nothing of a corrupt entry was applied (its savepoint was rolled
		// back): move the cursor past it, unless a later entry did.
		cerr := db.submit(ctx, func(t *wtx) error {
			cur, err := t.cursor()
			if err != nil || cur >= corruptAt {
				return err
			}
			return t.setCursor(corruptAt)
		}, true)
		if cerr != nil {
			for i := range errs {
				if errs[i] != nil && errors.Is(errs[i], storage.ErrCorrupt) {
					errs[i] = fmt.Errorf("%w (then: %w)", errs[i], cerr)
				}
			}
		}
	}
	return got, errs
}

// Applied is what one entry of the shared log added to the views.
type Applied struct {
	// Account is the account whose log the entry extended with events
	// this node did not have; "" for the server's logs and for an entry
	// that brought nothing new (this node's own writes coming back).
	Account string
	// Offline counts the offline messages the new events stored for
	// Account.
	Offline int
}

// ReplicaCursor returns the position of the last entry of the shared log
// applied by ApplyReplicated, 0 if none.
func (db *DB) ReplicaCursor(ctx context.Context) (uint64, error) {
	var pos uint64
	err := db.queryRow(ctx, `SELECT pos FROM replica_cursor WHERE id = 1`).Scan(&pos)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read replica cursor: %w", err)
	}
	return pos, nil
}

func (t *wtx) cursor() (uint64, error) {
	var pos uint64
	err := t.queryRow(sCursor).Scan(&pos)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read replica cursor: %w", err)
	}
	return pos, nil
}

func (t *wtx) setCursor(pos uint64) error {
	if _, err := t.exec(sSetCursor, int64(pos)); err != nil {
		return fmt.Errorf("store replica cursor: %w", err)
	}
	return nil
}

// applyEntry applies e, the entry at position pos, to the logs and views
// (see ApplyReplicated) and records pos as the position of e's log. It
// checks the whole entry before writing anything; its check errors wrap
// storage.ErrCorrupt.
func (t *wtx) applyEntry(e *entry, pos uint64, got *Applied) error {
	acct := e.Kind == kindAccount
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s: %w", e.key(), fmt.Sprintf(format, args...), storage.ErrCorrupt)
	}
	headStmt, hashStmt, insStmt := sLogHead, sEventHash, sInsertEvent
	if !acct {
		headStmt, hashStmt, insStmt = sServerLogHead, sServerEventHash, sInsertServerEvent
	}
	var headSeq uint64
	var headHash []byte
	err := t.queryRow(headStmt, e.Name).Scan(&headSeq, &headHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: read log head: %w", e.key(), err)
	}
	first := -1 // index of the first event db does not have
	seq, hash := headSeq, headHash
	var created []byte // key of the last new account-created event
	for i := range e.Events {
		ev := &e.Events[i]
		if ev.Seq == 0 || (i > 0 && ev.Seq != e.Events[i-1].Seq+1) {
			return corrupt("event %d out of sequence", ev.Seq)
		}
		if ev.Seq <= headSeq {
			local := headHash
			if ev.Seq != headSeq {
				if err := t.queryRow(hashStmt, e.Name, int64(ev.Seq)).Scan(&local); err != nil {
					return fmt.Errorf("%s: read event %d: %w", e.key(), ev.Seq, err)
				}
			}
			if !bytes.Equal(local, ev.Hash) {
				return corrupt("fork at event %d", ev.Seq)
			}
			continue
		}
		if first < 0 {
			first = i
		}
		d := ev.data()
		if ev.Seq != seq+1 || !bytes.Equal(ev.Prev, hash) {
			return corrupt("event %d does not follow event %d", ev.Seq, seq)
		}
		if h := storage.HashEvent(ev.Prev, ev.Seq, ev.Type, d, ev.Time); !bytes.Equal(h[:], ev.Hash) {
			return corrupt("event %d: hash mismatch", ev.Seq)
		}
		if !json.Valid(d) {
			return corrupt("event %d: data is not JSON", ev.Seq)
		}
		if acct && ev.Type == storage.EventAccountCreated {
			var cd accountCreatedData
			if err := json.Unmarshal(d, &cd); err != nil || len(cd.Key) != ed25519.PublicKeySize {
				return corrupt("event %d: bad account key", ev.Seq)
			}
			created = cd.Key
		}
		seq, hash = ev.Seq, ev.Hash
	}
	last := &e.Events[len(e.Events)-1]
	if first >= 0 && acct {
		if err := t.checkEntrySig(e, created, last, corrupt); err != nil {
			return err
		}
	}
	if first >= 0 {
		if acct {
			got.Account = e.Name
		}
		for i := first; i < len(e.Events); i++ {
			ev := &e.Events[i]
			if acct && ev.Type == storage.EventOfflineStored {
				got.Offline++
			}
			se := storage.Event{Account: e.Name, Seq: ev.Seq, Type: ev.Type, Data: ev.data(), Time: timeFromNano(ev.Time)}
			prev := ev.Prev
			if prev == nil {
				prev = []byte{}
			}
			if _, err := t.exec(insStmt, e.Name, int64(ev.Seq), ev.Type, se.Data, ev.Time, prev, ev.Hash); err != nil {
				return fmt.Errorf("%s: insert event %d: %w", e.key(), ev.Seq, err)
			}
			if acct {
				err = t.apply(&se)
			} else {
				err = t.applyServer(&se)
			}
			if err != nil {
				var syn *json.SyntaxError
				var typ *json.UnmarshalTypeError
				if errors.As(err, &syn) || errors.As(err, &typ) {
					return corrupt("%v", err)
				}
				return err
			}
		}
		if acct {
			if e.Key != nil {
				if _, err := t.exec(sUpsertKey, e.Name, e.Key.Public, e.Key.Private); err != nil {
					return fmt.Errorf("%s: store account key: %w", e.key(), err)
				}
			}
			if _, err := t.exec(sUpsertHead, e.Name, int64(last.Seq), last.Hash, e.Sig); err != nil {
				return fmt.Errorf("%s: store log head: %w", e.key(), err)
			}
		}
	}
	if _, err := t.exec(sUpsertReplicated, e.key(), int64(pos), int64(last.Seq)); err != nil {
		return fmt.Errorf("%s: store replicated position: %w", e.key(), err)
	}
	return nil
}

// checkEntrySig checks the key and the head signature of an account entry
// that brings new events: the key travels with account-created (and must be
// that event's), the signature is of the last event by the account's key.
func (t *wtx) checkEntrySig(e *entry, created []byte, last *entryEvent, corrupt func(string, ...any) error) error {
	var pub []byte
	switch {
	case e.Key != nil:
		k := e.Key
		if len(k.Public) != ed25519.PublicKeySize || len(k.Private) != ed25519.PrivateKeySize ||
			!bytes.Equal(ed25519.PrivateKey(k.Private).Public().(ed25519.PublicKey), k.Public) {
			return corrupt("bad account key")
		}
		if created != nil && !bytes.Equal(created, k.Public) {
			return corrupt("account key is not the one created")
		}
		pub = k.Public
	case created != nil:
		return corrupt("account created without its key")
	default:
		var priv []byte
		err := t.queryRow(sAccountKeys, e.Name).Scan(&pub, &priv)
		if errors.Is(err, sql.ErrNoRows) {
			return corrupt("no account key")
		}
		if err != nil {
			return fmt.Errorf("%s: read account key: %w", e.key(), err)
		}
	}
	if len(pub) != ed25519.PublicKeySize ||
		!ed25519.Verify(pub, storage.HeadMessage(e.Name, last.Seq, last.Hash), e.Sig) {
		return corrupt("bad head signature")
	}
	return nil
}
