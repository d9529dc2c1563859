package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Errors of the calls below.
var (
	// ErrConflict reports that a log did not end where the caller expected:
	// another node appended first.
	ErrConflict = errors.New("cluster: log moved on")
	// ErrUnreachable reports that no node answered a request.
	ErrUnreachable = errors.New("cluster: node unreachable")
)

// jsWrongLastSequence is JetStream's error code for a failed
// expected-last-subject-sequence check.
const jsWrongLastSequence = 10071

// AppendAt appends data to the log named key, provided the log's last entry
// is at position last (0: the log has none), and returns the new entry's
// position (its stream sequence). It returns an error wrapping ErrConflict
// when the log ended elsewhere. Like Append it retries while the stream has
// no leader, with one message id, so an entry is stored once.
func (n *Node) AppendAt(ctx context.Context, key string, last uint64, data []byte) (uint64, error) {
	subj := LogSubject(key)
	id := nuid.Next()
	var pos uint64
	err := n.retry(ctx, func(ctx context.Context) error {
		ack, err := n.js.Publish(ctx, subj, data,
			jetstream.WithMsgID(id),
			jetstream.WithExpectStream(LogStream),
			jetstream.WithExpectLastSequencePerSubject(last),
			jetstream.WithRetryAttempts(0))
		if err != nil {
			return err
		}
		pos = ack.Sequence
		return nil
	})
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jsWrongLastSequence {
		return 0, fmt.Errorf("append to log: %w", ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("append to log: %w", err)
	}
	return pos, nil
}

// LastPos returns the position of the newest entry of the log stream (0
// when empty), retrying while the stream has no leader.
func (n *Node) LastPos(ctx context.Context) (uint64, error) {
	var li LogInfo
	err := n.retry(ctx, func(ctx context.Context) error {
		var err error
		li, err = n.LogInfo(ctx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("log position: %w", err)
	}
	return li.LastPos, nil
}

// LogInfo is the state of the log stream as its leader reports it.
type LogInfo struct {
	Leader  string // "" while the stream has no leader
	LastPos uint64
	// Replicas names the nodes holding a copy of the log, the leader
	// first when there is one. Leaf nodes never do.
	Replicas []string
}

// LogInfo asks the log stream's leader for its state, in one request.
func (n *Node) LogInfo(ctx context.Context) (LogInfo, error) {
	s, err := n.js.Stream(ctx, LogStream)
	if err != nil {
		return LogInfo{}, fmt.Errorf("log info: %w", err)
	}
	info := s.CachedInfo() // fetched by Stream just now
	li := LogInfo{LastPos: info.State.LastSeq}
	if c := info.Cluster; c != nil {
		li.Leader = c.Leader
		if c.Leader != "" {
			li.Replicas = append(li.Replicas, c.Leader)
		}
		for _, r := range c.Replicas {
			li.Replicas = append(li.Replicas, r.Name)
		}
	}
	return li, nil
}

// Follow calls fn with every entry of the log stream whose position is above
// after, in order and in batches (as read, so that the caller can apply a
// batch at once), until ctx ends (it then returns nil) or fn returns an
// error (returned). It reads with batched direct gets, which this node's own
// replica answers when it holds one, so applying goes on while the stream
// elects a new leader; new entries wake it at once (a plain subscription to
// the log subjects), and it looks again every followPoll in any case.
func (n *Node) Follow(ctx context.Context, after uint64, fn func(batch []Entry) error) error {
	wake := make(chan struct{}, 1)
	sub, err := n.nc.Subscribe("log.>", func(*nats.Msg) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("follow log: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		es, err := n.readSubject(ctx, "log.>", after, false)
		if err != nil && ctx.Err() == nil {
			n.log.Debug("read log", "after", after, "err", err)
		}
		i := 0
		for i < len(es) && es[i].Seq <= after {
			i++
		}
		if batch := es[i:]; len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
			after = batch[len(batch)-1].Seq
		}
		if len(es) > 0 && err == nil {
			continue // there may be more
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-t.C:
		}
	}
}

// followPoll is how often Follow looks for entries it was not woken for.
const followPoll = 250 * time.Millisecond

// Request sends data with the header fields hdr to subject and returns the
// reply. It returns an error wrapping ErrUnreachable when nobody listens on
// subject (a node that died: its routes closed).
func (n *Node) Request(ctx context.Context, subject string, hdr map[string]string, data []byte) ([]byte, error) {
	m := nats.NewMsg(subject)
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	m.Data = data
	reply, err := n.nc.RequestMsgWithContext(ctx, m)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("request %s: %w", subject, ErrUnreachable)
	}
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", subject, err)
	}
	return reply.Data, nil
}

// PublishMsg sends data with the header fields hdr to subject, at most
// once, without waiting.
func (n *Node) PublishMsg(subject string, hdr map[string]string, data []byte) error {
	m := nats.NewMsg(subject)
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	m.Data = data
	if err := n.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// Serve calls fn for every message on subject, in order, on one goroutine;
// when the message is a request, fn's reply (if not nil) answers it.
func (n *Node) Serve(subject string, fn func(hdr func(string) string, data []byte) (reply []byte)) (stop func(), err error) {
	sub, err := n.nc.Subscribe(subject, func(m *nats.Msg) {
		reply := fn(m.Header.Get, m.Data)
		if reply != nil && m.Reply != "" {
			if err := m.Respond(reply); err != nil {
				n.log.Debug("respond", "subject", subject, "err", err)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	sub.SetPendingLimits(64<<10, 64<<20)
	if err := n.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// SessionEvent is one change of the session bucket seen by WatchSessions.
type SessionEvent struct {
	Key     string
	Value   []byte
	Deleted bool // deleted or purged
	// Ready is set on the one event marking the end of the entries that
	// existed when the watch began (Key empty).
	Ready bool
}

// WatchSessions calls fn with every entry of the session bucket whose key
// matches pattern (">" for all): the current ones, a Ready event, then every
// change, until ctx ends. Entries expiring by TTL are not reported.
func (n *Node) WatchSessions(ctx context.Context, pattern string, fn func(SessionEvent)) error {
	kv, err := n.sessions(ctx)
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, pattern)
	if err != nil {
		return fmt.Errorf("watch sessions: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch sessions: %w", nats.ErrConnectionClosed)
			}
			if e == nil {
				fn(SessionEvent{Ready: true})
				continue
			}
			op := e.Operation()
			fn(SessionEvent{Key: e.Key(), Value: e.Value(), Deleted: op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge})
		}
	}
}
