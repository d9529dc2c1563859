package clusternode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"casp3r/internal/cluster"
	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// sessionValue is a resource as the session bucket holds it.
type sessionValue struct {
	JID        string `json:"jid"`
	Node       string `json:"node"`
	Available  bool   `json:"available,omitempty"`
	Priority   int    `json:"priority,omitempty"`
	Presence   string `json:"presence,omitempty"` // the last available presence, XML
	Interested bool   `json:"interested,omitempty"`
	// Directed lists the JIDs the resource sent directed available
	// presence to: they hear of its end if its node dies.
	Directed []string `json:"directed,omitempty"`
	// Seq orders the states of one key: it grows with every change the
	// owner makes, across restarts, so a state that arrives late (the
	// bucket's copy after the announcement, or the reverse) is ignored.
	Seq uint64 `json:"seq,omitempty"`
	// Gone marks a resource that ended: a tombstone, kept until the
	// bucket's TTL so that a late put of an older state cannot revive it.
	Gone bool `json:"gone,omitempty"`
}

// sessionKey is the bucket key of a resource of node.
func sessionKey(node string, full jid.JID) string {
	return "s." + node + "." + cluster.Token(full.String())
}

// keyNode returns the node named in a session key.
func keyNode(key string) string {
	rest, ok := strings.CutPrefix(key, "s.")
	if !ok {
		return ""
	}
	node, _, _ := strings.Cut(rest, ".")
	return node
}

// directory shares this node's resources with the others and keeps theirs
// in the router. A change is announced on subjSessions at once and written
// to the session bucket behind it: the announcement reaches the running
// nodes in a millisecond even while the bucket elects a leader (seconds),
// and the bucket tells the nodes that start later.
type directory struct {
	n *Node

	mu      sync.Mutex
	seq     uint64                   // the last Seq given to a change
	pending map[string]*sessionValue // key → latest state to write; nil: delete the entry
	order   []string
	wake    chan struct{}
	idle    chan struct{}           // closed once nothing is pending; nil while idle
	local   map[string]sessionValue // key → this node's live entries, latest state

	remoteMu sync.Mutex
	remote   map[string]router.Resource // key → remote resource, as put in the router
	directed map[string][]jid.JID       // key → its directed presence recipients
	seen     map[string]seenMark        // key → newest state applied
	seenWake chan struct{}              // closed and replaced when seen changes

	// Owned by serveNode: what a stanza waited for in vain, not waited for
	// again (a stuck applier or a lost announcement must not cost every
	// stanza after it causalWait).
	waivedPos uint64
	waivedSeq map[string]uint64 // session key → state
}

// seenMark is the newest state of another node's key applied here.
type seenMark struct {
	seq  uint64
	gone bool
	at   time.Time
}

// seenKeep is how long the mark of an ended resource is kept: far longer
// than an announcement and the bucket's copy can be apart.
const seenKeep = 2 * time.Minute

// start watches the bucket, loads the other nodes' resources, ends the
// sessions this node left behind when it stopped last, and begins
// observing the router.
func (d *directory) start(ctx context.Context, n *Node) error {
	d.n = n
	d.pending = make(map[string]*sessionValue)
	d.wake = make(chan struct{}, 1)
	d.remote = make(map[string]router.Resource)
	d.directed = make(map[string][]jid.JID)
	d.local = make(map[string]sessionValue)
	d.seen = make(map[string]seenMark)
	d.seenWake = make(chan struct{})

	stop, err := n.c.Serve(subjNodePrefix+n.self, d.serveNode)
	if err != nil {
		return fmt.Errorf("join cluster: %w", err)
	}
	n.stops = append(n.stops, stop)
	stop, err = n.c.Serve(subjSessions, func(hdr func(string) string, data []byte) []byte {
		if key := hdr("Key"); keyNode(key) != n.self {
			d.remoteChanged(cluster.SessionEvent{Key: key, Value: data})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("join cluster: %w", err)
	}
	n.stops = append(n.stops, stop)

	ready := make(chan struct{})
	var stale []sessionValue
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		readyOnce := sync.OnceFunc(func() { close(ready) })
		defer readyOnce()
		loaded := false
		// The watch is made again whenever it ends (a request timed out on
		// a slow link, the bucket was electing a leader): a node without it
		// would miss other nodes' sessions that were never announced to it.
		for {
			if !loaded {
				stale = stale[:0] // the replay lists them again
			}
			err := n.c.WatchSessions(n.ctx, "s.>", func(e cluster.SessionEvent) {
				if e.Ready {
					loaded = true
					readyOnce()
					return
				}
				if keyNode(e.Key) == n.self {
					select {
					case <-ready:
						d.ownChanged(e)
					default:
						// Left from this node's last run: its sessions are gone.
						var v sessionValue
						if !e.Deleted && json.Unmarshal(e.Value, &v) == nil && !v.Gone {
							stale = append(stale, v)
						}
					}
					return
				}
				d.remoteChanged(e)
			})
			if n.ctx.Err() != nil {
				return
			}
			n.log.Warn("watching the session table ended; watching again", "loaded", loaded, "err", err)
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return fmt.Errorf("load the session table: %w", ctx.Err())
	}
	n.p.Router.SetObserver(d)
	n.wg.Add(2)
	go d.writeLoop()
	go d.refreshLoop()
	for _, v := range stale {
		full, err := jid.Parse(v.JID)
		if err != nil {
			continue
		}
		if v.Available {
			n.p.Presence.Ended(ctx, router.Resource{Session: nopSession{full}, JID: full, Available: true, Priority: v.Priority},
				parseJIDs(v.Directed))
		}
		d.announce(sessionKey(n.self, full), &sessionValue{JID: v.JID, Node: n.self, Gone: true})
	}
	return nil
}

// ResourceChanged queues the new state of a local resource for the bucket
// (router.Observer).
func (d *directory) ResourceChanged(res router.Resource, directed []jid.JID, gone bool) {
	key := sessionKey(d.n.self, res.JID)
	if gone {
		d.announce(key, &sessionValue{JID: res.JID.String(), Node: d.n.self, Gone: true})
		return
	}
	v := &sessionValue{
		JID:        res.JID.String(),
		Node:       d.n.self,
		Available:  res.Available,
		Priority:   res.Priority,
		Interested: res.Interested,
	}
	for _, j := range directed {
		v.Directed = append(v.Directed, j.String())
	}
	if res.Presence != nil {
		v.Presence = string(xmlstream.AppendXML(nil, res.Presence, ""))
	}
	d.announce(key, v)
}

// announce gives v the next Seq, tells the other nodes at once and queues
// v for the bucket.
func (d *directory) announce(key string, v *sessionValue) {
	d.mu.Lock()
	d.seq = max(d.seq+1, uint64(time.Now().UnixNano()))
	v.Seq = d.seq
	if v.Gone {
		delete(d.local, key)
	} else {
		d.local[key] = *v
	}
	d.queueLocked(key, v)
	d.mu.Unlock()
	b, err := json.Marshal(v)
	if err == nil {
		err = d.n.c.PublishMsg(subjSessions, map[string]string{"Key": key}, b)
	}
	if err != nil && d.n.ctx.Err() == nil {
		d.n.log.Debug("announce session state", "key", key, "err", err)
	}
}

// requeue queues v for the bucket again, unless it is no longer the key's
// latest state or a later one is queued already.
func (d *directory) requeue(key string, v *sessionValue) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, queued := d.pending[key]; queued {
		return
	}
	if v == nil {
		d.queueLocked(key, nil)
		return
	}
	cur, live := d.local[key]
	if v.Gone == live || (live && cur.Seq != v.Seq) {
		return
	}
	d.queueLocked(key, v)
}

func (d *directory) queueLocked(key string, v *sessionValue) {
	if _, ok := d.pending[key]; !ok {
		d.order = append(d.order, key)
	}
	d.pending[key] = v
	if d.idle == nil {
		d.idle = make(chan struct{})
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued changes to the bucket, the latest state of each
// key once.
func (d *directory) writeLoop() {
	defer d.n.wg.Done()
	for {
		select {
		case <-d.n.ctx.Done():
			return
		case <-d.wake:
		}
		for {
			d.mu.Lock()
			if len(d.order) == 0 {
				if d.idle != nil {
					close(d.idle)
					d.idle = nil
				}
				d.mu.Unlock()
				break
			}
			key := d.order[0]
			d.order = d.order[1:]
			v := d.pending[key]
			delete(d.pending, key)
			d.mu.Unlock()
			if !d.write(key, v) {
				// The bucket is unreachable beyond writeTimeout: try again
				// after a pause, unless a newer state replaced v.
				select {
				case <-d.n.ctx.Done():
					return
				case <-time.After(time.Second):
				}
				d.requeue(key, v)
			}
		}
	}
}

// removeDead queues the deletion of a dead node's entry.
func (d *directory) removeDead(key string) {
	d.mu.Lock()
	d.queueLocked(key, nil)
	d.mu.Unlock()
}

// write puts v in the bucket (nil: deletes the entry) and reports whether
// it got there.
func (d *directory) write(key string, v *sessionValue) bool {
	ctx, cancel := context.WithTimeout(d.n.ctx, writeTimeout)
	defer cancel()
	var err error
	if v == nil {
		err = d.n.c.DeleteSession(ctx, key)
	} else {
		var b []byte
		if b, err = json.Marshal(v); err == nil {
			_, err = d.n.c.PutSession(ctx, key, b)
		}
	}
	if err != nil && d.n.ctx.Err() == nil {
		d.n.log.Warn("share session state", "key", key, "err", err)
		return false
	}
	return true
}

// refreshLoop rewrites this node's live entries well within the bucket's
// TTL, so that a node starting later sees idle sessions too, and forgets
// the marks of other nodes' resources that ended long ago.
func (d *directory) refreshLoop() {
	defer d.n.wg.Done()
	every := d.n.p.Config.SessionTTL.Duration / 3
	if every <= 0 {
		every = cluster.DefaultSessionTTL / 3
	}
	every = min(every, seenKeep)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.n.ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		for key, v := range d.local {
			if _, queued := d.pending[key]; !queued {
				d.queueLocked(key, &v)
			}
		}
		d.mu.Unlock()
		d.remoteMu.Lock()
		for key, m := range d.seen {
			if m.gone && time.Since(m.at) > seenKeep {
				delete(d.seen, key)
			}
		}
		d.remoteMu.Unlock()
	}
}

// flush waits until the queued changes are written, or ctx ends.
func (d *directory) flush(ctx context.Context) {
	d.mu.Lock()
	idle := d.idle
	d.mu.Unlock()
	if idle == nil {
		return
	}
	select {
	case <-idle:
	case <-ctx.Done():
	}
}

// ownChanged handles a change to one of this node's own entries made by
// another node: a survivor that took this node for dead deleted them. The
// entry is written again while the session lives.
func (d *directory) ownChanged(e cluster.SessionEvent) {
	if !e.Deleted {
		return
	}
	d.mu.Lock()
	v, ok := d.local[e.Key]
	d.mu.Unlock()
	if ok {
		d.announce(e.Key, &v)
	}
}

// remoteChanged mirrors another node's entry into the router: from the
// node's announcement or from the bucket, whichever comes first; the older
// of the two is ignored.
func (d *directory) remoteChanged(e cluster.SessionEvent) {
	d.remoteMu.Lock()
	defer d.remoteMu.Unlock()
	if e.Deleted {
		// A survivor removed the entries of a node it took for dead.
		d.removeLocked(e.Key)
		return
	}
	var v sessionValue
	if err := json.Unmarshal(e.Value, &v); err != nil {
		d.n.log.Warn("bad session entry", "key", e.Key, "err", err)
		return
	}
	full, err := jid.Parse(v.JID)
	if err != nil || !full.IsFull() || v.Node == "" || v.Node != keyNode(e.Key) {
		d.n.log.Warn("bad session entry", "key", e.Key, "jid", v.JID)
		return
	}
	if m, ok := d.seen[e.Key]; ok && v.Seq != 0 && v.Seq <= m.seq {
		return // older than what was applied
	}
	d.seen[e.Key] = seenMark{seq: v.Seq, gone: v.Gone, at: time.Now()}
	close(d.seenWake)
	d.seenWake = make(chan struct{})
	if v.Gone {
		d.removeLocked(e.Key)
		return
	}
	res := router.Resource{
		Session:    &stand{d: d, node: v.Node, full: full},
		JID:        full,
		Available:  v.Available,
		Priority:   v.Priority,
		Interested: v.Interested,
		Node:       v.Node,
	}
	if v.Presence != "" {
		if p, err := xmlstream.ParseFrame([]byte(v.Presence), xmlstream.Limits{}); err == nil {
			res.Presence = p
		}
	}
	d.remote[e.Key] = res
	d.directed[e.Key] = parseJIDs(v.Directed)
	d.n.p.Router.PutRemote(res)
}

// waitSeen waits until the state seq of another node's session key, or a
// newer one, is applied here.
func (d *directory) waitSeen(ctx context.Context, key string, seq uint64) error {
	for {
		d.remoteMu.Lock()
		m, ch := d.seen[key], d.seenWake
		d.remoteMu.Unlock()
		if m.seq >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for state %d of session %s (at %d): %w", seq, key, m.seq, ctx.Err())
		case <-ch:
		}
	}
}

func (d *directory) removeLocked(key string) {
	if old, ok := d.remote[key]; ok {
		delete(d.remote, key)
		delete(d.directed, key)
		d.n.p.Router.RemoveRemote(old.JID, old.Node)
	}
}

// deadResource is a resource of a dead node and the JIDs it had sent
// directed presence to.
type deadResource struct {
	res      router.Resource
	directed []jid.JID
}

// dropNode forgets every resource of a dead node and returns them.
func (d *directory) dropNode(node string) []deadResource {
	d.remoteMu.Lock()
	defer d.remoteMu.Unlock()
	var out []deadResource
	for key, res := range d.remote {
		if res.Node != node {
			continue
		}
		out = append(out, deadResource{res, d.directed[key]})
		delete(d.remote, key)
		delete(d.directed, key)
		d.n.p.Router.RemoveRemote(res.JID, res.Node)
		if m, ok := d.seen[key]; ok {
			d.seen[key] = seenMark{seq: m.seq, gone: true, at: time.Now()}
		}
	}
	return out
}

// parseJIDs parses the JIDs of a session entry, skipping bad ones.
func parseJIDs(ss []string) []jid.JID {
	var out []jid.JID
	for _, s := range ss {
		if j, err := jid.Parse(s); err == nil {
			out = append(out, j)
		}
	}
	return out
}

// Operations carried to another node's subject, in the Op header.
const (
	opForward = "fwd"   // request: deliver, answer ok or gone
	opSend    = "send"  // deliver if the session is there
	opClose   = "close" // close the session with the stream error in Cond
)

var errGone = errors.New("no such session on that node")

// causalWait bounds how long a stanza from another node waits for this
// node to apply the log as far as the sender had; well under
// forwardTimeout, so that the sender hears back.
const causalWait = 2 * time.Second

// serveNode handles the stanzas other nodes send to this node's sessions.
func (d *directory) serveNode(hdr func(string) string, data []byte) []byte {
	full, err := jid.Parse(hdr("To"))
	if err != nil || !full.IsFull() {
		return []byte("gone")
	}
	if pos, err := strconv.ParseUint(hdr("Pos"), 10, 64); err == nil && pos > d.n.applied.Load() && pos > d.waivedPos {
		ctx, cancel := context.WithTimeout(d.n.ctx, causalWait)
		err := d.n.waitApplied(ctx, pos)
		cancel()
		if err != nil {
			d.waivedPos = pos
			d.n.log.Warn("stanza from another node delivered before this node caught up", "err", err)
		}
	}
	if key := hdr("From-Key"); key != "" && keyNode(key) != d.n.self {
		if seq, err := strconv.ParseUint(hdr("From-Seq"), 10, 64); err == nil && seq > d.waivedSeq[key] {
			ctx, cancel := context.WithTimeout(d.n.ctx, causalWait)
			err := d.waitSeen(ctx, key, seq)
			cancel()
			if err != nil {
				if d.waivedSeq == nil || len(d.waivedSeq) >= 1024 {
					d.waivedSeq = make(map[string]uint64) // rare; bounded
				}
				d.waivedSeq[key] = seq
				d.n.log.Warn("stanza from another node delivered before its sender's session is known here", "err", err)
			}
		}
	}
	switch hdr("Op") {
	case opClose:
		if res, ok := d.n.p.Router.Lookup(full); ok && res.Node == "" {
			res.Session.Close(stanza.StreamErr(hdr("Cond"), string(data)))
		}
		return nil
	case opForward, opSend:
		st, err := xmlstream.ParseFrame(data, xmlstream.Limits{})
		if err != nil {
			d.n.log.Warn("bad stanza from another node", "err", err)
			return []byte("gone")
		}
		if d.n.p.Router.DeliverLocal(full, st) {
			return []byte("ok")
		}
		return []byte("gone")
	}
	return nil
}

// header returns the header of an operation carrying st to the session
// full on another node, with this node's known log position and, when st
// comes from a session of this node, that session's key and state: the
// receiver delivers st only once it knows the sender's session, so that
// an answer reaches it even if st got there before its announcement.
func (d *directory) header(op string, full jid.JID, st *xmlstream.Element) map[string]string {
	h := map[string]string{"Op": op, "To": full.String(), "Pos": strconv.FormatUint(d.n.known.Load(), 10)}
	if from, err := jid.Parse(st.Get("from")); err == nil && from.IsFull() {
		key := sessionKey(d.n.self, from)
		d.mu.Lock()
		v, ok := d.local[key]
		d.mu.Unlock()
		if ok {
			h["From-Key"], h["From-Seq"] = key, strconv.FormatUint(v.Seq, 10)
		}
	}
	return h
}

// stand is the stand-in session of a resource bound on another node.
type stand struct {
	d    *directory
	node string
	full jid.JID
}

func (s *stand) JID() jid.JID { return s.full }

// Send carries st to the resource's node, at most once.
func (s *stand) Send(st *xmlstream.Element) {
	err := s.d.n.c.PublishMsg(subjNodePrefix+s.node,
		s.d.header(opSend, s.full, st), xmlstream.AppendXML(nil, st, ""))
	if err != nil {
		s.d.n.log.Debug("send to node", "node", s.node, "err", err)
	}
}

// Forward carries st to the resource's node and reports whether the
// session there took it.
func (s *stand) Forward(ctx context.Context, st *xmlstream.Element) error {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	reply, err := s.d.n.c.Request(ctx, subjNodePrefix+s.node,
		s.d.header(opForward, s.full, st), xmlstream.AppendXML(nil, st, ""))
	if err != nil {
		return err
	}
	if string(reply) != "ok" {
		return errGone
	}
	return nil
}

// Close asks the resource's node to end the session.
func (s *stand) Close(se *stanza.StreamError) {
	cond, text := "undefined-condition", ""
	if se != nil {
		cond, text = se.Condition, se.Text
	}
	err := s.d.n.c.PublishMsg(subjNodePrefix+s.node,
		map[string]string{"Op": opClose, "To": s.full.String(), "Cond": cond}, []byte(text))
	if err != nil {
		s.d.n.log.Debug("close on node", "node", s.node, "err", err)
	}
}

// nopSession stands for a session that no longer exists anywhere, when its
// unavailable presence is broadcast.
type nopSession struct{ full jid.JID }

func (s nopSession) JID() jid.JID                                    { return s.full }
func (nopSession) Send(*xmlstream.Element)                           {}
func (nopSession) Close(*stanza.StreamError)                         {}
func (nopSession) Forward(context.Context, *xmlstream.Element) error { return errGone }
