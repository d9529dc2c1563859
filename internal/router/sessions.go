package router

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"slices"
	"strings"
	"sync"

	"casp3r/internal/jid"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// Session is a bound client connection as the router sees it.
type Session interface {
	// JID is the session's full JID.
	JID() jid.JID
	// Send queues st for the client; it never blocks. A session whose queue
	// is full closes itself.
	Send(st *xmlstream.Element)
	// Close ends the session with a stream error (e.g. conflict).
	Close(err *stanza.StreamError)
}

// Resource is a snapshot of one bound resource's state.
type Resource struct {
	Session   Session
	JID       jid.JID
	Available bool               // has sent initial presence and not unavailable since
	Priority  int                // from its last available presence
	Presence  *xmlstream.Element // last broadcast available presence, nil if none
	// Interested is set once the resource requested the roster (RFC 6121
	// §1.5): subscription requests and roster pushes go to interested
	// resources.
	Interested bool
	// Node names the cluster node the resource is bound on; empty for a
	// session of this node. The Session of a remote resource is a stand-in
	// that carries stanzas to that node (see Forwarder).
	Node string
}

// Forwarder is implemented by the stand-in Session of a resource bound on
// another node of a cluster. Stanzas that must not be lost or need an answer
// (messages, IQs: see Router.deliver) go through Forward, which reports
// whether that node took the stanza for the resource; presence goes
// through Send.
type Forwarder interface {
	Forward(ctx context.Context, st *xmlstream.Element) error
}

// Observer is told of every change to a local resource (bound, presence,
// roster interest, directed presence, unbound), in order, so that a
// cluster can share the session table with its other nodes. directed lists
// the JIDs the resource has sent directed available presence to (nil when
// gone), which must hear of its end. It must not block or call back into
// the router.
type Observer interface {
	ResourceChanged(res Resource, directed []jid.JID, gone bool)
}

// account holds the resources of one bare JID. There are a few, so a
// slice searched in order serves: a map of one entry costs about 200 bytes
// more per connected user.
type account struct {
	res []*resEntry
}

func (a *account) get(resource string) *resEntry {
	for _, e := range a.res {
		if e.JID.Resource() == resource {
			return e
		}
	}
	return nil
}

// set puts e in place of the entry of the same resource, if any.
func (a *account) set(e *resEntry) {
	for i, old := range a.res {
		if old.JID.Resource() == e.JID.Resource() {
			a.res[i] = e
			return
		}
	}
	a.res = append(a.res, e)
}

func (a *account) remove(resource string) {
	a.res = slices.DeleteFunc(a.res, func(e *resEntry) bool { return e.JID.Resource() == resource })
}

type resEntry struct {
	Resource
	directed map[jid.JID]struct{} // JIDs sent directed available presence
}

type sessions struct {
	mu       sync.RWMutex
	accounts map[string]*account // by bare JID string
	count    int                 // local resources
}

func (t *sessions) init() { t.accounts = make(map[string]*account) }

// Bind binds s to resource (generated when empty) of account bare. A
// session already bound to the same full JID is closed with conflict (the
// newest login wins, as users expect when a phone reconnects).
func (r *Router) Bind(s Session, bare jid.JID, resource string) (jid.JID, error) {
	if resource == "" {
		resource = newResourceID()
	}
	full, err := bare.WithResource(resource)
	if err != nil {
		return jid.JID{}, stanza.BadRequest.WithText("invalid resource")
	}
	t := &r.sessions
	t.mu.Lock()
	acct := t.accounts[bare.String()]
	if acct == nil {
		acct = &account{}
		t.accounts[bare.String()] = acct
	}
	old := acct.get(full.Resource())
	e := &resEntry{Resource: Resource{Session: s, JID: full}}
	acct.set(e)
	if old == nil || old.Node != "" {
		t.count++
	}
	t.mu.Unlock()
	if old != nil && old.Node == "" {
		old.Session.Close(stanza.StreamErr("conflict", "replaced by a new connection"))
	}
	r.changed(e.Resource, nil, false)
	return full, nil
}

// changed tells the observer about a change to a local resource.
func (r *Router) changed(res Resource, directed []jid.JID, gone bool) {
	if r.observer != nil && res.Node == "" {
		r.observer.ResourceChanged(res, directed, gone)
	}
}

// Unbind removes s from the table. It returns the state the resource had, so
// that the caller can broadcast unavailable presence where needed, and false
// when s was not bound (already replaced).
func (r *Router) Unbind(s Session) (Resource, []jid.JID, bool) {
	full := s.JID()
	t := &r.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	acct := t.accounts[full.Bare().String()]
	if acct == nil {
		return Resource{}, nil, false
	}
	e := acct.get(full.Resource())
	if e == nil || e.Session != s {
		return Resource{}, nil, false
	}
	acct.remove(full.Resource())
	if len(acct.res) == 0 {
		delete(t.accounts, full.Bare().String())
	}
	t.count--
	r.changed(e.Resource, nil, true)
	return e.Resource, directedList(e.directed), true
}

// PutRemote records or updates res, a resource bound on another node
// (res.Node set, res.Session its stand-in). A local session bound to the
// same full JID is kept: each node delivers to its own.
func (r *Router) PutRemote(res Resource) {
	if res.Node == "" {
		return
	}
	t := &r.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	bare := res.JID.Bare().String()
	acct := t.accounts[bare]
	if acct == nil {
		acct = &account{}
		t.accounts[bare] = acct
	}
	if e := acct.get(res.JID.Resource()); e != nil && e.Node == "" {
		return
	}
	acct.set(&resEntry{Resource: res})
}

// RemoveRemote forgets the remote resource full of node, returning its last
// state; false when there was none.
func (r *Router) RemoveRemote(full jid.JID, node string) (Resource, bool) {
	t := &r.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	acct := t.accounts[full.Bare().String()]
	if acct == nil {
		return Resource{}, false
	}
	e := acct.get(full.Resource())
	if e == nil || e.Node == "" || e.Node != node {
		return Resource{}, false
	}
	acct.remove(full.Resource())
	if len(acct.res) == 0 {
		delete(t.accounts, full.Bare().String())
	}
	return e.Resource, true
}

// DeliverLocal sends st to the local session bound to full and reports
// whether there is one. A cluster calls it for stanzas forwarded by other
// nodes.
func (r *Router) DeliverLocal(full jid.JID, st *xmlstream.Element) bool {
	res, ok := r.Lookup(full)
	if !ok || res.Node != "" {
		return false
	}
	res.Session.Send(st)
	return true
}

func directedList(m map[jid.JID]struct{}) []jid.JID {
	if len(m) == 0 {
		return nil
	}
	out := make([]jid.JID, 0, len(m))
	for j := range m {
		out = append(out, j)
	}
	return out
}

// Resources returns snapshots of the resources bound to bare.
func (r *Router) Resources(bare jid.JID) []Resource {
	t := &r.sessions
	t.mu.RLock()
	defer t.mu.RUnlock()
	acct := t.accounts[bare.Bare().String()]
	if acct == nil {
		return nil
	}
	out := make([]Resource, 0, len(acct.res))
	for _, e := range acct.res {
		out = append(out, e.Resource)
	}
	return out
}

// Lookup returns the resource bound to full.
func (r *Router) Lookup(full jid.JID) (Resource, bool) {
	t := &r.sessions
	t.mu.RLock()
	defer t.mu.RUnlock()
	acct := t.accounts[full.Bare().String()]
	if acct == nil {
		return Resource{}, false
	}
	e := acct.get(full.Resource())
	if e == nil {
		return Resource{}, false
	}
	return e.Resource, true
}

// SessionCount returns the number of resources bound on this node.
func (r *Router) SessionCount() int {
	r.sessions.mu.RLock()
	defer r.sessions.mu.RUnlock()
	return r.sessions.count
}

// update runs fn on the entry of the local resource full under the table
// lock, and tells the observer when fn reports a change.
func (r *Router) update(full jid.JID, fn func(e *resEntry) (changed bool)) bool {
	t := &r.sessions
	t.mu.Lock()
	acct := t.accounts[full.Bare().String()]
	if acct == nil {
		t.mu.Unlock()
		return false
	}
	e := acct.get(full.Resource())
	if e == nil || e.Node != "" {
		t.mu.Unlock()
		return false
	}
	notify := fn(e)
	res := e.Resource
	var directed []jid.JID
	if notify {
		directed = directedList(e.directed)
	}
	t.mu.Unlock()
	if notify {
		r.changed(res, directed, false)
	}
	return true
}

// SetPresence records the broadcast presence of full: available with
// priority and the stanza, or unavailable (p == nil). It reports whether the
// resource was available before.
func (r *Router) SetPresence(full jid.JID, p *xmlstream.Element, priority int) (wasAvailable bool) {
	r.update(full, func(e *resEntry) bool {
		wasAvailable = e.Available
		e.Available = p != nil
		e.Priority = priority
		e.Presence = p
		if p == nil {
			e.directed = nil
		}
		return true
	})
	return wasAvailable
}

// SetInterested marks full as having requested its roster.
func (r *Router) SetInterested(full jid.JID) {
	r.update(full, func(e *resEntry) bool {
		changed := !e.Interested
		e.Interested = true
		return changed
	})
}

// SetDirected records (available) or forgets (!available) directed presence
// sent by full to to.
func (r *Router) SetDirected(full, to jid.JID, available bool) {
	r.update(full, func(e *resEntry) bool {
		_, had := e.directed[to]
		if available {
			if e.directed == nil {
				e.directed = make(map[jid.JID]struct{})
			}
			e.directed[to] = struct{}{}
		} else {
			delete(e.directed, to)
		}
		return had != available
	})
}

func newResourceID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return "c" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// EndSession unbinds s and, when it was bound, lets the presence handler
// broadcast its unavailable presence.
func (r *Router) EndSession(ctx context.Context, s Session) {
	res, directed, ok := r.Unbind(s)
	if !ok {
		return
	}
	r.presence.Ended(ctx, res, directed)
}
