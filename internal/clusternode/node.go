// Package clusternode joins a CASP3R node to the other nodes serving the
// same domain (the distributed server): it connects the router's session
// table, the storage's logs and the node's status to the embedded NATS
// engine of package cluster.
//
//   - Logs: every write is appended to the shared, replicated log before it
//     commits locally (sqlite.Replicator, encrypted with a key derived from
//     the shared secret), and every node applies the shared log to its own
//     SQLite views, in order, from a cursor kept in the same database.
//   - Sessions: each local resource is an entry of the session bucket
//     (s.<node>.<token>); every node watches the bucket and keeps the other
//     nodes' resources in its router as stand-ins that carry stanzas to
//     their node (core NATS request on casp3r.node.<name>).
//   - Liveness: every node publishes a heartbeat each second; a node silent
//     for DeadAfter is dead: its resources leave every router and one
//     survivor (the first by name) broadcasts their unavailable presence.
//
// See docs/design/cluster.md.
package clusternode

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"casp3r/internal/cluster"
	"casp3r/internal/server"
	"casp3r/internal/storage"
	"casp3r/internal/storage/sqlite"
)

// Timing of heartbeats and of the decisions made from them.
const (
	// Heartbeat is how often a node tells the others it is alive.
	Heartbeat = time.Second
	// DeadAfter is how long a node may stay silent before the others treat
	// it as dead.
	DeadAfter = 4 * Heartbeat
	// joinTimeout bounds how long Start waits for a quorum.
	joinTimeout = 2 * time.Minute
	// writeTimeout bounds one replicated write (a node cut off from the
	// quorum refuses writes after it).
	writeTimeout = 10 * time.Second
	// forwardTimeout bounds the forwarding of one stanza to another node.
	forwardTimeout = 5 * time.Second
	// flushTimeout bounds how long Shutdown waits for the session bucket
	// to take this node's last changes.
	flushTimeout = 2 * time.Second
)

// Subjects of core NATS messages between nodes.
const (
	subjHeartbeat  = "casp3r.hb"
	subjNodePrefix = "casp3r.node."
	subjSessions   = "casp3r.sess" // session changes, announced as they happen
)

// Node is this node's membership of the cluster.
type Node struct {
	c    *cluster.Node
	p    server.ClusterParts
	log  *slog.Logger
	self string
	aead cipher.AEAD

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	applied atomic.Uint64 // the apply cursor: last log position applied
	// known is the highest log position this node knows to be committed:
	// the apply cursor or an entry it appended itself. Stanzas sent to other
	// nodes carry it, and the receiver delivers them only once it has
	// applied that far, so that a user answering a stanza is served from
	// data at least as new as the data the stanza came from.
	known     atomic.Uint64
	appliedMu sync.Mutex
	appliedCh chan struct{} // closed and replaced when applied moves

	dir directory
	mon monitor

	// Users for whom other nodes stored offline messages, waiting for
	// redeliverLoop.
	offMu   sync.Mutex
	offline map[string]struct{}
	offWake chan struct{}

	stops []func()
}

// Start joins the cluster described by p.Config: it starts the embedded
// NATS node, waits for a quorum, applies the shared log to the local views
// until caught up, and wires the router and storage to the cluster. It is a
// server.ClusterStarter.
func Start(ctx context.Context, p server.ClusterParts) (server.Cluster, error) {
	n, err := start(ctx, p)
	if err != nil {
		return nil, err
	}
	return n, nil
}

func start(ctx context.Context, p server.ClusterParts) (*Node, error) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	aead, err := newAEAD(p.Secret)
	if err != nil {
		return nil, err
	}
	jctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	log.Info("joining cluster", "node", p.Config.Name, "leaf", p.Config.Leaf, "listen", p.Config.Listen,
		"leaf_listen", p.Config.LeafListen, "peers", p.Config.Peers)
	cc := cluster.Config{
		Name:        p.Config.Name,
		Dir:         p.Dir,
		RouteListen: p.Config.Listen,
		Advertise:   p.Config.Advertise,
		Peers:       p.Config.Peers,
		Secret:      hex.EncodeToString(cluster.Derive(p.Secret, "casp3r cluster routes v1")),
		Replicas:    min(p.Config.Replicas, len(p.Config.Peers)+1),
		SessionTTL:  p.Config.SessionTTL.Duration,
		LeafListen:  p.Config.LeafListen,
		Logger:      log,
	}
	if p.Config.Leaf {
		// A leaf has no routes and no stream of its own: its peers are
		// the full nodes' leaf listeners.
		cc.Leaf, cc.RouteListen, cc.Advertise, cc.Replicas = true, "", "", 0
	}
	c, err := cluster.Start(jctx, cc)
	if err != nil {
		return nil, fmt.Errorf("join cluster: %w", err)
	}
	n := &Node{c: c, p: p, log: log, self: p.Config.Name, aead: aead, appliedCh: make(chan struct{}),
		offline: make(map[string]struct{}), offWake: make(chan struct{}, 1)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*Node, error) {
		n.cancel()
		n.wg.Wait()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = c.Shutdown(sctx)
		return nil, err
	}
	if err := c.EnsureStreams(jctx); err != nil {
		return fail(fmt.Errorf("join cluster: %w", err))
	}
	n.wg.Add(1)
	go n.redeliverLoop()
	if err := n.startApplier(jctx, ctx); err != nil {
		return fail(err)
	}
	p.Store.SetReplicator(n)
	n.mon.init(n)
	if err := n.dir.start(jctx, n); err != nil {
		return fail(err)
	}
	if err := n.mon.start(); err != nil {
		return fail(err)
	}
	n.wg.Add(1)
	go n.pushLoop()
	log.Info("cluster joined", "node", n.self, "applied", n.applied.Load())
	return n, nil
}

// Shutdown leaves the cluster: the session entries of this node are
// removed (its sessions have ended by now), the loops stop and the NATS
// node shuts down, handing its leaderships over.
func (n *Node) Shutdown(ctx context.Context) error {
	// The other nodes heard of the ended sessions already (announcements);
	// the bucket may be out of reach when the whole cluster stops, and the
	// NATS node needs the rest of ctx to hand its leaderships over.
	fctx, cancel := context.WithTimeout(ctx, flushTimeout)
	n.dir.flush(fctx)
	cancel()
	for _, stop := range n.stops {
		stop()
	}
	n.cancel()
	n.wg.Wait()
	return n.c.Shutdown(ctx)
}

// startApplier applies the shared log from the local cursor on, and waits
// until the log's end at the time of the call has been applied. ctx bounds
// the start; the wait is bounded only by wait, since a node that was down
// long may have more to apply than any fixed time allows.
func (n *Node) startApplier(ctx, wait context.Context) error {
	cursor, err := n.p.Store.ReplicaCursor(ctx)
	if err != nil {
		return fmt.Errorf("read apply cursor: %w", err)
	}
	n.applied.Store(cursor)
	n.setKnown(cursor)
	// The wait ends too if applying stops.
	wait, stopped := context.WithCancel(wait)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer stopped()
		err := n.c.Follow(n.ctx, cursor, n.apply)
		if err != nil && n.ctx.Err() == nil {
			n.log.Error("applying the shared log stopped", "err", err)
		}
	}()
	last, err := n.c.LastPos(ctx)
	if err == nil {
		err = n.waitApplied(wait, last)
	}
	if err != nil {
		return fmt.Errorf("catch up with the shared log: %w", err)
	}
	return nil
}

// apply applies a batch of entries of the shared log to the local views, in
// as few commits as the storage writer allows.
func (n *Node) apply(batch []cluster.Entry) error {
	rs := make([]sqlite.Replicated, len(batch))
	for i, e := range batch {
		entry, err := n.open(e.Data)
		if err != nil {
			n.log.Error("shared log entry cannot be read (is keys/server.secret the same on every node?)",
				"pos", e.Seq, "err", err)
			entry = nil // applied as a corrupt entry: the cursor moves past it
		}
		rs[i] = sqlite.Replicated{Pos: e.Seq, Data: entry}
	}
	got, errs := n.p.Store.ApplyReplicatedBatch(n.ctx, rs)
	var last uint64
	defer func() {
		if last > 0 {
			n.setApplied(last)
		}
	}()
	for i, err := range errs {
		pos := rs[i].Pos
		switch {
		case err == nil:
			if got[i].Offline > 0 {
				n.offlineStored(got[i].Account)
			}
		case n.ctx.Err() != nil:
			return n.ctx.Err()
		case errors.Is(err, storage.ErrCorrupt):
			n.log.Error("shared log entry rejected", "pos", pos, "err", err)
		default:
			return fmt.Errorf("apply log entry %d: %w", pos, err)
		}
		last = pos
	}
	return nil
}

// offlineStored queues user for redeliverLoop: another node stored offline
// messages for user, perhaps because it had not yet heard of a session of
// the user just bound on this node.
func (n *Node) offlineStored(user string) {
	if n.p.Redeliver == nil {
		return
	}
	n.offMu.Lock()
	n.offline[user] = struct{}{}
	n.offMu.Unlock()
	select {
	case n.offWake <- struct{}{}:
	default:
	}
}

// redeliverLoop hands the queued users to ClusterParts.Redeliver, away from
// the applier: a delivery deletes the messages, a write that may wait for
// the applier.
func (n *Node) redeliverLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.offWake:
		}
		n.offMu.Lock()
		users := n.offline
		n.offline = make(map[string]struct{})
		n.offMu.Unlock()
		for user := range users {
			n.p.Redeliver(n.ctx, user)
		}
	}
}

// setKnown raises the known committed position to pos.
func (n *Node) setKnown(pos uint64) {
	for {
		cur := n.known.Load()
		if pos <= cur || n.known.CompareAndSwap(cur, pos) {
			return
		}
	}
}

func (n *Node) setApplied(pos uint64) {
	n.setKnown(pos)
	n.appliedMu.Lock()
	n.applied.Store(pos)
	close(n.appliedCh)
	n.appliedCh = make(chan struct{})
	n.appliedMu.Unlock()
}

// waitApplied returns once the apply cursor reached pos.
func (n *Node) waitApplied(ctx context.Context, pos uint64) error {
	for {
		n.appliedMu.Lock()
		if n.applied.Load() >= pos {
			n.appliedMu.Unlock()
			return nil
		}
		ch := n.appliedCh
		n.appliedMu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for log position %d (at %d): %w", pos, n.applied.Load(), ctx.Err())
		case <-ch:
		}
	}
}

// Replicate appends a log entry of the local store to the shared log (see sqlite.Replicator).
func (n *Node) Replicate(ctx context.Context, key string, last uint64, entry []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	pos, err := n.c.AppendAt(ctx, key, last, n.seal(entry))
	if errors.Is(err, cluster.ErrConflict) {
		return 0, fmt.Errorf("%w: %w", storage.ErrConflict, err)
	}
	if err != nil {
		return 0, fmt.Errorf("replicate: %w", err)
	}
	n.setKnown(pos)
	return pos, nil
}

// Sync returns once every entry appended to the shared log before the call
// has been applied locally (see sqlite.Replicator).
func (n *Node) Sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	last, err := n.c.LastPos(ctx)
	if err != nil {
		return err
	}
	return n.waitApplied(ctx, last)
}

// pushLoop ships, every second, the local log events that did not go
// through this node's replicated write path (the casp3r CLI writes the
// database directly; a node's data from before it joined).
func (n *Node) pushLoop() {
	defer n.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		pushed, err := n.p.Store.PushPending(n.ctx)
		if err != nil && n.ctx.Err() == nil {
			n.log.Warn("replicate local changes", "err", err)
		} else if pushed > 0 {
			n.log.Info("replicated local changes", "logs", pushed)
		}
	}
}

// newAEAD makes the cipher that seals log entries: AES-256-GCM with a key
// derived from the shared secret. The log stream is kept on every
// replica's disk: what it holds must not be readable without the secret
// (routes, TLS, protect it only on the way).
func newAEAD(secret []byte) (cipher.AEAD, error) {
	if len(secret) < 16 {
		return nil, errors.New("cluster: the shared secret is too short")
	}
	block, err := aes.NewCipher(cluster.Derive(secret, "casp3r cluster log v1"))
	if err != nil {
		return nil, fmt.Errorf("cluster cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("cluster cipher: %w", err)
	}
	return aead, nil
}

func (n *Node) seal(entry []byte) []byte { return n.aead.Seal(nil, nil, entry, nil) }

func (n *Node) open(data []byte) ([]byte, error) {
	b, err := n.aead.Open(nil, nil, data, nil)
	if err != nil {
		return nil, fmt.Errorf("open log entry: %w", err)
	}
	return b, nil
}
