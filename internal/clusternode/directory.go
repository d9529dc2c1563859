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
// in the router.
type directory struct {
	n *Node

	mu      sync.Mutex
	pending map[string]*sessionValue // key → latest state; nil value = delete
	order   []string
	wake    chan struct{}
	idle    chan struct{} // closed once nothing is pending; nil while idle

	remoteMu sync.Mutex
	remote   map[string]router.Resource // key → remote resource, as put in the router
	local    map[string]sessionValue    // key → this node's entries, as last written
}

// start watches the bucket, loads the other nodes' resources, ends the
// sessions this node left behind when it stopped last, and begins
// observing the router.
func (d *directory) start(ctx context.Context, n *Node) error {
	d.n = n
	d.pending = make(map[string]*sessionValue)
	d.wake = make(chan struct{}, 1)
	d.remote = make(map[string]router.Resource)
	d.local = make(map[string]sessionValue)

	stop, err := n.c.Serve(subjNodePrefix+n.self, d.serveNode)
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
		err := n.c.WatchSessions(n.ctx, "s.>", func(e cluster.SessionEvent) {
			if e.Ready {
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
					if !e.Deleted && json.Unmarshal(e.Value, &v) == nil {
						stale = append(stale, v)
					}
				}
				return
			}
			d.remoteChanged(e)
		})
		if err != nil && n.ctx.Err() == nil {
			n.log.Error("watching the session table stopped", "err", err)
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return fmt.Errorf("load the session table: %w", ctx.Err())
	}
	n.p.Router.SetObserver(d)
	n.wg.Add(1)
	go d.writeLoop()
	for _, v := range stale {
		full, err := jid.Parse(v.JID)
		if err != nil {
			continue
		}
		if v.Available {
			n.p.Presence.Ended(ctx, router.Resource{Session: nopSession{full}, JID: full, Available: true, Priority: v.Priority}, nil)
		}
		d.enqueue(sessionKey(n.self, full), nil)
	}
	return nil
}

// ResourceChanged queues the new state of a local resource for the bucket
// (router.Observer).
func (d *directory) ResourceChanged(res router.Resource, gone bool) {
	key := sessionKey(d.n.self, res.JID)
	if gone {
		d.enqueue(key, nil)
		return
	}
	v := &sessionValue{
		JID:        res.JID.String(),
		Node:       d.n.self,
		Available:  res.Available,
		Priority:   res.Priority,
		Interested: res.Interested,
	}
	if res.Presence != nil {
		v.Presence = string(xmlstream.AppendXML(nil, res.Presence, ""))
	}
	d.enqueue(key, v)
}

func (d *directory) enqueue(key string, v *sessionValue) {
	d.mu.Lock()
	if _, ok := d.pending[key]; !ok {
		d.order = append(d.order, key)
	}
	d.pending[key] = v
	if d.idle == nil {
		d.idle = make(chan struct{})
	}
	d.mu.Unlock()
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
			d.write(key, v)
		}
	}
}

func (d *directory) write(key string, v *sessionValue) {
	ctx, cancel := context.WithTimeout(d.n.ctx, writeTimeout)
	defer cancel()
	var err error
	if v == nil {
		d.remoteMu.Lock()
		delete(d.local, key)
		d.remoteMu.Unlock()
		err = d.n.c.DeleteSession(ctx, key)
	} else {
		d.remoteMu.Lock()
		d.local[key] = *v
		d.remoteMu.Unlock()
		var b []byte
		if b, err = json.Marshal(v); err == nil {
			_, err = d.n.c.PutSession(ctx, key, b)
		}
	}
	if err != nil && d.n.ctx.Err() == nil {
		d.n.log.Warn("share session state", "key", key, "err", err)
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
	d.remoteMu.Lock()
	v, ok := d.local[e.Key]
	d.remoteMu.Unlock()
	if ok {
		d.enqueue(e.Key, &v)
	}
}

// remoteChanged mirrors another node's entry into the router.
func (d *directory) remoteChanged(e cluster.SessionEvent) {
	r := d.n.p.Router
	d.remoteMu.Lock()
	defer d.remoteMu.Unlock()
	if e.Deleted {
		if old, ok := d.remote[e.Key]; ok {
			delete(d.remote, e.Key)
			r.RemoveRemote(old.JID, old.Node)
		}
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
	r.PutRemote(res)
}

// dropNode forgets every resource of a dead node and returns them.
func (d *directory) dropNode(node string) []router.Resource {
	d.remoteMu.Lock()
	defer d.remoteMu.Unlock()
	var out []router.Resource
	for key, res := range d.remote {
		if res.Node != node {
			continue
		}
		delete(d.remote, key)
		d.n.p.Router.RemoveRemote(res.JID, res.Node)
		out = append(out, res)
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
	if pos, err := strconv.ParseUint(hdr("Pos"), 10, 64); err == nil && pos > d.n.applied.Load() {
		ctx, cancel := context.WithTimeout(d.n.ctx, causalWait)
		err := d.n.waitApplied(ctx, pos)
		cancel()
		if err != nil {
			d.n.log.Warn("stanza from another node delivered before this node caught up", "err", err)
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

// header returns the header of an operation for the session full on
// another node, with this node's known log position.
func (d *directory) header(op string, full jid.JID) map[string]string {
	return map[string]string{"Op": op, "To": full.String(), "Pos": strconv.FormatUint(d.n.known.Load(), 10)}
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
		s.d.header(opSend, s.full), xmlstream.AppendXML(nil, st, ""))
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
		s.d.header(opForward, s.full), xmlstream.AppendXML(nil, st, ""))
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
