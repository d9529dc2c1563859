package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// ErrNotFound is returned for a session key that does not exist or expired.
var ErrNotFound = errors.New("cluster: not found")

const (
	// attemptTimeout bounds one JetStream request; the caller's ctx bounds
	// the retries.
	attemptTimeout = 2 * time.Second
	// dedupWindow is how long the log stream remembers an append's id, so a
	// retried Append (same id) is stored once. Retries must end within it.
	dedupWindow = time.Minute
	// readBatch and readMaxBytes bound one direct-get round trip.
	readBatch    = 512
	readMaxBytes = 4 << 20
	// readIdle is how long ReadEntries waits for the next reply message.
	readIdle = 5 * time.Second

	sessionMaxBytes = 64 << 20
	sessionMaxValue = 64 << 10
)

// Entry is one event of an account's log with its stream sequence.
type Entry struct {
	Seq  uint64
	Data []byte
}

// EnsureStreams creates the log stream and the session bucket, or updates
// them to this node's configuration. It is idempotent and safe to call on
// every node at once; it retries until ctx ends while the cluster is still
// forming (no quorum, peers not yet known). On a leaf node it creates and
// changes nothing: it waits until the full nodes have made both.
func (n *Node) EnsureStreams(ctx context.Context) error {
	if n.cfg.Leaf {
		return n.awaitStreams(ctx)
	}
	logCfg := jetstream.StreamConfig{
		Name:        LogStream,
		Description: "casp3r account logs, one subject per account",
		Subjects:    []string{"log.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    n.cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      0,
		// Should a limit ever be set, refuse appends rather than drop history.
		Discard:     jetstream.DiscardNew,
		Duplicates:  dedupWindow,
		AllowDirect: true,
		// Events are hash-linked: removing one breaks the chain. Purging a
		// whole subject (account removal) stays possible.
		DenyDelete: true,
	}
	if err := n.retry(ctx, func(ctx context.Context) error {
		_, err := n.js.CreateOrUpdateStream(ctx, logCfg)
		return err
	}); err != nil {
		return fmt.Errorf("ensure stream %s: %w", LogStream, err)
	}
	kvCfg := jetstream.KeyValueConfig{
		Bucket:       SessionBucket,
		Description:  "casp3r sessions: presence and stream management",
		TTL:          n.cfg.SessionTTL,
		History:      1,
		Storage:      jetstream.MemoryStorage,
		Replicas:     n.cfg.Replicas,
		MaxBytes:     sessionMaxBytes,
		MaxValueSize: sessionMaxValue,
	}
	var kv jetstream.KeyValue
	if err := n.retry(ctx, func(ctx context.Context) error {
		var err error
		kv, err = n.js.CreateOrUpdateKeyValue(ctx, kvCfg)
		return err
	}); err != nil {
		return fmt.Errorf("ensure bucket %s: %w", SessionBucket, err)
	}
	n.kv.Store(&kv)
	return nil
}

// awaitStreams waits until the log stream and the session bucket exist.
func (n *Node) awaitStreams(ctx context.Context) error {
	if err := n.retry(ctx, func(ctx context.Context) error {
		_, err := n.js.Stream(ctx, LogStream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return errNotYet{err}
		}
		return err
	}); err != nil {
		return fmt.Errorf("stream %s (made by the full nodes): %w", LogStream, err)
	}
	var kv jetstream.KeyValue
	if err := n.retry(ctx, func(ctx context.Context) error {
		var err error
		kv, err = n.js.KeyValue(ctx, SessionBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return errNotYet{err}
		}
		return err
	}); err != nil {
		return fmt.Errorf("bucket %s (made by the full nodes): %w", SessionBucket, err)
	}
	n.kv.Store(&kv)
	return nil
}

// errNotYet marks an error that waiting may fix for retry.
type errNotYet struct{ err error }

func (e errNotYet) Error() string { return e.err.Error() }
func (e errNotYet) Unwrap() error { return e.err }

// Append appends data to the account's log and returns its stream sequence
// once the stream's leader has stored it on a quorum of replicas (each with
// fsync). While the stream has no leader (a node died, an election is under
// way) it retries until ctx ends; the retries carry one message id, so data
// is stored once even if an acknowledgement was lost.
func (n *Node) Append(ctx context.Context, account string, data []byte) (seq uint64, err error) {
	subj := LogSubject(account)
	id := nuid.Next()
	err = n.retry(ctx, func(ctx context.Context) error {
		ack, err := n.js.Publish(ctx, subj, data,
			jetstream.WithMsgID(id),
			jetstream.WithExpectStream(LogStream),
			jetstream.WithRetryAttempts(0))
		if err != nil {
			return err
		}
		seq = ack.Sequence
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("append to log: %w", err)
	}
	return seq, nil
}

// ReadLog returns the data of the account's log entries with a stream
// sequence above after, oldest first. See [Node.ReadEntries].
func (n *Node) ReadLog(ctx context.Context, account string, after uint64) ([][]byte, error) {
	es, err := n.ReadEntries(ctx, account, after)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = e.Data
	}
	return out, nil
}

// ReadEntries returns the account's log entries with a stream sequence above
// after, oldest first, with their sequences (pass the last one as after to
// read on). Reads are direct gets answered by the nearest replica, this
// node's own when it holds one: an entry appended on another node a moment
// ago may not be there yet.
func (n *Node) ReadEntries(ctx context.Context, account string, after uint64) ([]Entry, error) {
	return n.readSubject(ctx, LogSubject(account), after, true)
}

// readSubject returns the log entries on subj (a wildcard is allowed) with a
// position above after, oldest first: all of them, or only the first batch
// when all is false.
func (n *Node) readSubject(ctx context.Context, subj string, after uint64, all bool) ([]Entry, error) {
	inbox := n.nc.NewRespInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	var out []Entry
	next := after + 1
	for {
		req := fmt.Appendf(nil, `{"seq":%d,"next_by_subj":%q,"batch":%d,"max_bytes":%d}`,
			next, subj, readBatch, readMaxBytes)
		if err := n.nc.PublishRequest(n.apiPrefix()+"DIRECT.GET."+LogStream, inbox, req); err != nil {
			return nil, fmt.Errorf("read log: %w", err)
		}
		more, err := n.readBatch(ctx, sub, &out)
		if err != nil {
			return nil, fmt.Errorf("read log: %w", err)
		}
		if !more || !all {
			return out, nil
		}
		next = out[len(out)-1].Seq + 1
	}
}

// readBatch collects one direct-get batch into out. It reports whether the
// server has more matching entries than it sent.
func (n *Node) readBatch(ctx context.Context, sub *nats.Subscription, out *[]Entry) (more bool, err error) {
	got := 0
	for {
		mctx, cancel := context.WithTimeout(ctx, readIdle)
		m, err := sub.NextMsgWithContext(mctx)
		cancel()
		if err != nil {
			return false, err
		}
		switch status := m.Header.Get("Status"); status {
		case "":
			seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
			if err != nil {
				return false, fmt.Errorf("bad sequence header: %w", err)
			}
			*out = append(*out, Entry{Seq: seq, Data: m.Data})
			got++
		case "404": // nothing at or after the requested sequence
			return false, nil
		case "204": // end of batch
			pending := m.Header.Get("Nats-Num-Pending")
			return pending != "0" && pending != "" && got > 0, nil
		case "503":
			return false, nats.ErrNoResponders
		default:
			return false, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
	}
}

// PutSession stores value under key in the session bucket and returns the
// entry's revision. The entry expires after Config.SessionTTL unless it is
// put again. Keys are NATS KV keys: [A-Za-z0-9_=/-] tokens separated by
// dots, such as Token(bare)+"."+Token(resource).
func (n *Node) PutSession(ctx context.Context, key string, value []byte) (uint64, error) {
	kv, err := n.sessions(ctx)
	if err != nil {
		return 0, err
	}
	var rev uint64
	err = n.retry(ctx, func(ctx context.Context) error {
		var err error
		rev, err = kv.Put(ctx, key, value)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put session: %w", err)
	}
	return rev, nil
}

// GetSession returns the value stored under key, or ErrNotFound.
func (n *Node) GetSession(ctx context.Context, key string) ([]byte, error) {
	kv, err := n.sessions(ctx)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	return e.Value(), nil
}

// DeleteSession removes key from the session bucket.
func (n *Node) DeleteSession(ctx context.Context, key string) error {
	kv, err := n.sessions(ctx)
	if err != nil {
		return err
	}
	if err := n.retry(ctx, func(ctx context.Context) error { return kv.Delete(ctx, key) }); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func (n *Node) sessions(ctx context.Context) (jetstream.KeyValue, error) {
	if kv := n.kv.Load(); kv != nil {
		return *kv, nil
	}
	var kv jetstream.KeyValue
	err := n.retry(ctx, func(ctx context.Context) error {
		var err error
		kv, err = n.js.KeyValue(ctx, SessionBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", SessionBucket, err)
	}
	n.kv.Store(&kv)
	return kv, nil
}

// retry runs op with a per-attempt timeout until it succeeds, fails for a
// reason waiting cannot fix, or ctx ends.
func (n *Node) retry(ctx context.Context, op func(ctx context.Context) error) error {
	wait := 25 * time.Millisecond
	var timer *time.Timer
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := op(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !transient(err) {
			return err
		}
		n.log.Debug("cluster request failed, retrying", "attempt", attempt, "err", err)
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-timer.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// transient reports whether err may go away by itself: no leader, no
// quorum, peers not known yet, a request that timed out.
func transient(err error) bool {
	if errors.As(err, new(errNotYet)) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10005, // JSClusterNoPeersErr: peers not known yet
			10008, // JSClusterNotAvailErr
			10023, // JSInsufficientResourcesErr
			10118: // JSStreamOfflineErr
			return true
		}
		return apiErr.Code == 503 || apiErr.Code == 408
	}
	return false
}
