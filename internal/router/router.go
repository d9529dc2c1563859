package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"casp3r/internal/jid"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// IQHandler answers an iq addressed to the domain or, on behalf of an
// account, to a local bare JID (or with no to). It returns the payload of
// the result (nil for an empty result) or an error, usually a
// *stanza.Error. from and to of iq are always set and prepared.
type IQHandler interface {
	HandleIQ(ctx context.Context, iq *xmlstream.Element) (*xmlstream.Element, error)
}

// IQHandlerFunc adapts a function to IQHandler.
type IQHandlerFunc func(ctx context.Context, iq *xmlstream.Element) (*xmlstream.Element, error)

// HandleIQ calls f.
func (f IQHandlerFunc) HandleIQ(ctx context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	return f(ctx, iq)
}

// PresenceHandler implements presence (RFC 6121 §3–4): subscriptions,
// broadcast and probes.
type PresenceHandler interface {
	// Outbound handles presence sent by a local client session, with from
	// stamped to its full JID.
	Outbound(ctx context.Context, p *xmlstream.Element) error
	// Inbound handles presence addressed to a local account, whatever its
	// origin.
	Inbound(ctx context.Context, p *xmlstream.Element) error
	// Ended is told that a session ended, with its last state and the JIDs
	// it sent directed presence to, so it can broadcast unavailable.
	Ended(ctx context.Context, res Resource, directed []jid.JID)
}

// OfflineStore keeps messages for accounts with no available resource
// (XEP-0160). Store returns only once the message is durable.
type OfflineStore interface {
	StoreOffline(ctx context.Context, user string, st *xmlstream.Element) error
}

// Accounts tells whether a local account exists.
type Accounts interface {
	AccountExists(ctx context.Context, user string) (bool, error)
}

// Remote carries stanzas to other domains (s2s). Without one, they bounce
// with remote-server-not-found.
type Remote interface {
	RouteRemote(ctx context.Context, st *xmlstream.Element) error
}

// Router delivers stanzas for one domain.
type Router struct {
	domain   jid.JID
	log      *slog.Logger
	iq       map[iqKey]IQHandler
	presence PresenceHandler
	offline  OfflineStore
	accounts Accounts
	remote   Remote
	observer Observer
	sessions sessions
}

type iqKey struct{ space, local string }

// Config wires a Router. Presence, Offline and Accounts are required.
type Config struct {
	Domain   jid.JID
	Logger   *slog.Logger
	Presence PresenceHandler
	Offline  OfflineStore
	Accounts Accounts
	Remote   Remote // optional
}

// New returns a router for cfg.Domain.
func New(cfg Config) *Router {
	r := &Router{
		domain:   cfg.Domain,
		log:      cfg.Logger,
		iq:       make(map[iqKey]IQHandler),
		presence: cfg.Presence,
		offline:  cfg.Offline,
		accounts: cfg.Accounts,
		remote:   cfg.Remote,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.sessions.init()
	return r
}

// SetPresenceHandler sets the presence handler; for wiring, where the
// handler itself needs the router.
func (r *Router) SetPresenceHandler(p PresenceHandler) { r.presence = p }

// SetObserver sets the observer of local resources; for wiring, before
// sessions are bound.
func (r *Router) SetObserver(o Observer) { r.observer = o }

// SetRemote sets the carrier of stanzas to other domains; for wiring.
func (r *Router) SetRemote(rm Remote) { r.remote = rm }

// SetOfflineStore sets the offline store; for wiring, like
// SetPresenceHandler.
func (r *Router) SetOfflineStore(o OfflineStore) { r.offline = o }

// Domain returns the domain the router serves.
func (r *Router) Domain() jid.JID { return r.domain }

// HandleIQ registers h for iqs whose payload is the element space/local.
// Wiring only: not safe to call while stanzas flow.
func (r *Router) HandleIQ(space, local string, h IQHandler) {
	r.iq[iqKey{space, local}] = h
}

// IsLocal reports whether j belongs to the served domain.
func (r *Router) IsLocal(j jid.JID) bool { return j.Domain() == r.domain.Domain() }

// RouteFromClient handles a stanza from a local client session; from is
// already stamped with the session's full JID.
func (r *Router) RouteFromClient(ctx context.Context, st *xmlstream.Element) {
	if st.Name.Local == stanza.KindPresence {
		if err := r.presence.Outbound(ctx, st); err != nil {
			r.bounce(ctx, st, err)
		}
		return
	}
	r.Route(ctx, st)
}

// Route delivers a stanza whose from is set: to a local resource or
// handler, to offline storage, or to another domain. Failures are answered
// to the sender with a stanza error.
func (r *Router) Route(ctx context.Context, st *xmlstream.Element) {
	if err := r.route(ctx, st); err != nil {
		r.bounce(ctx, st, err)
	}
}

// Bounce answers st with err as a stanza error (service-unavailable,
// remote-server-not-found, …), unless st is itself an error. s2s uses it
// for stanzas it could not deliver.
func (r *Router) Bounce(ctx context.Context, st *xmlstream.Element, err error) {
	r.bounce(ctx, st, err)
}

// bounce answers st with err as a stanza error, unless st is an error.
func (r *Router) bounce(ctx context.Context, st *xmlstream.Element, err error) {
	se := stanza.StanzaError(err)
	if se == stanza.InternalServerError || se.Condition == stanza.InternalServerError.Condition {
		r.log.Error("route stanza", "kind", st.Name.Local, "err", err)
	}
	reply := stanza.ErrorReply(st, se)
	if reply == nil {
		return
	}
	if reply.Get("from") == "" {
		reply.SetAttr("from", r.domain.String())
	}
	to, perr := jid.Parse(reply.Get("to"))
	if perr != nil || to.IsZero() {
		return
	}
	if errors.Is(err, stanza.JIDMalformed) && reply.Get("from") == st.Get("to") {
		// the bad address cannot be the error's from
		reply.SetAttr("from", r.domain.String())
	}
	// Errors go back only to where the stanza came from; an error in
	// delivering the error is dropped, never bounced again.
	if rerr := r.route(ctx, reply); rerr != nil {
		r.log.Debug("drop undeliverable error", "to", to.String(), "err", rerr)
	}
}

func (r *Router) route(ctx context.Context, st *xmlstream.Element) error {
	from, err := jid.Parse(st.Get("from"))
	if err != nil {
		return fmt.Errorf("bad from: %w", stanza.JIDMalformed)
	}
	var to jid.JID
	if raw := st.Get("to"); raw != "" {
		if to, err = jid.Parse(raw); err != nil {
			return stanza.JIDMalformed.WithText("invalid 'to' address")
		}
	}
	if to.IsZero() {
		// RFC 6120 §10.3: no to means the sender's own account.
		to = from.Bare()
	}
	if !r.IsLocal(to) {
		if r.remote == nil {
			return stanza.RemoteServerNotFound
		}
		return r.remote.RouteRemote(ctx, st)
	}
	switch st.Name.Local {
	case stanza.KindMessage:
		return r.routeMessage(ctx, st, to)
	case stanza.KindPresence:
		if to.Local() == "" {
			return nil // presence to the server itself: nothing to do
		}
		return r.presence.Inbound(ctx, st)
	case stanza.KindIQ:
		return r.routeIQ(ctx, st, from, to)
	}
	return stanza.BadRequest
}

func (r *Router) routeIQ(ctx context.Context, iq *xmlstream.Element, from, to jid.JID) error {
	typ := iq.Get("type")
	if to.IsFull() {
		res, ok := r.Lookup(to)
		if !ok {
			return stanza.ServiceUnavailable
		}
		if !r.deliver(ctx, res, iq) {
			return stanza.ServiceUnavailable
		}
		return nil
	}
	if typ == "result" || typ == "error" {
		return nil // a response to the server or an account: nothing waits for it yet
	}
	if typ != "get" && typ != "set" {
		return stanza.BadRequest.WithText("iq type must be get, set, result or error")
	}
	payload := iq.First()
	if payload == nil || len(iq.Children()) != 1 {
		return stanza.BadRequest.WithText("iq get/set needs exactly one payload")
	}
	if to.Local() != "" && to.Bare() != from.Bare() {
		ok, err := r.accounts.AccountExists(ctx, to.Local())
		if err != nil {
			return fmt.Errorf("check account: %w", err)
		}
		if !ok {
			return stanza.ServiceUnavailable
		}
	}
	h := r.iq[iqKey{payload.Name.Space, payload.Name.Local}]
	if h == nil {
		return stanza.ServiceUnavailable
	}
	if iq.Get("to") == "" {
		iq = iq.Copy()
		iq.SetAttr("to", to.String())
	}
	result, err := h.HandleIQ(ctx, iq)
	if err != nil {
		return err
	}
	reply := stanza.Result(iq, result)
	return r.route(ctx, reply)
}

// routeMessage applies RFC 6121 §8.5 for a message to a local JID.
func (r *Router) routeMessage(ctx context.Context, m *xmlstream.Element, to jid.JID) error {
	typ := stanza.Type(m)
	if to.Local() == "" {
		if typ == "error" {
			return nil
		}
		return stanza.ServiceUnavailable
	}
	if to.IsFull() {
		if res, ok := r.Lookup(to); ok && r.deliver(ctx, res, m) {
			return nil
		}
		switch typ {
		case "normal", "chat":
			// delivered as if to the bare JID
		case "groupchat":
			return stanza.ServiceUnavailable
		default: // headline, error
			return nil
		}
	}
	if typ == "groupchat" {
		return stanza.ServiceUnavailable
	}
	delivered := false
	var top [2]Resource // room for the usual one or two, on the stack
	for _, res := range r.appendTop(top[:0], to) {
		if r.deliver(ctx, res, m) {
			delivered = true
		}
	}
	if delivered {
		return nil
	}
	if typ == "error" || typ == "headline" {
		return nil
	}
	ok, err := r.accounts.AccountExists(ctx, to.Local())
	if err != nil {
		return fmt.Errorf("check account: %w", err)
	}
	if !ok {
		return stanza.ServiceUnavailable
	}
	if m.Child("", "body") == nil && len(m.Children()) == 0 {
		return nil // nothing worth keeping
	}
	if err := r.offline.StoreOffline(ctx, to.Local(), m); err != nil {
		if errors.Is(err, stanza.ServiceUnavailable) || errors.Is(err, stanza.ResourceConstraint) {
			return err
		}
		return fmt.Errorf("store offline: %w", err)
	}
	return nil
}

// deliver hands st to res: queued on a local session, or forwarded to the
// node of a remote one, reporting whether that node took it.
func (r *Router) deliver(ctx context.Context, res Resource, st *xmlstream.Element) bool {
	if f, ok := res.Session.(Forwarder); ok {
		if err := f.Forward(ctx, st); err != nil {
			r.log.Debug("forward to node", "node", res.Node, "to", res.JID.String(), "err", err)
			return false
		}
		return true
	}
	res.Session.Send(st)
	return true
}

// TopResources returns the available resources of bare with the highest
// non-negative priority, local or on other nodes: those a message to the
// bare JID goes to.
func (r *Router) TopResources(bare jid.JID) []Resource {
	return r.appendTop(nil, bare)
}

// appendTop appends the resources TopResources returns to dst, read
// under the table lock without a copy of all of bare's resources.
func (r *Router) appendTop(dst []Resource, bare jid.JID) []Resource {
	t := &r.sessions
	t.mu.RLock()
	defer t.mu.RUnlock()
	acct := t.accounts[bare.Bare().String()]
	if acct == nil {
		return dst
	}
	n0, best := len(dst), -1
	for _, e := range acct.res {
		res := &e.Resource
		if !res.Available || res.Priority < 0 {
			continue
		}
		switch {
		case res.Priority > best:
			best = res.Priority
			dst = append(dst[:n0], *res)
		case res.Priority == best:
			dst = append(dst, *res)
		}
	}
	return dst
}

// SendToResources sends st to every available resource of bare (if
// interested, only to those that requested the roster). It returns how many
// got it.
func (r *Router) SendToResources(bare jid.JID, st *xmlstream.Element, interestedOnly bool) int {
	n := 0
	for _, res := range r.Resources(bare) {
		if interestedOnly && !res.Interested {
			continue
		}
		if !interestedOnly && !res.Available {
			continue
		}
		res.Session.Send(st)
		n++
	}
	return n
}
