package roster

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/xmlstream"
)

// NS is the roster namespace (RFC 6121 §2).
const NS = "jabber:iq:roster"

// Stream features a server using this module supports, for c2s to
// advertise: roster versioning (XEP-0237 §3) and subscription
// pre-approval (RFC 6121 §3.4).
const (
	FeatureRosterVer   = "urn:xmpp:features:rosterver"    // <ver/>
	FeaturePreApproval = "urn:xmpp:features:pre-approval" // <sub/>
)

// Limits on what a roster set may hold (RFC 6121 §2.3.3 leaves them to the
// server). Lengths are in bytes.
const (
	MaxNameLen  = 1023
	MaxGroupLen = 1023
	MaxGroups   = 64
)

// Store is the roster storage the module needs; *sqlite.DB satisfies it.
// user is the account's localpart and jid the contact's bare JID.
// PutRosterItem and Roster return storage.ErrNotFound when the account does
// not exist.
type Store interface {
	Roster(ctx context.Context, user string) (items []storage.RosterItem, ver string, err error)
	RosterItem(ctx context.Context, user, jid string) (storage.RosterItem, error)
	PutRosterItem(ctx context.Context, user string, it storage.RosterItem) (ver string, err error)
	DeleteRosterItem(ctx context.Context, user, jid string) (ver string, err error)
}

// AvailableHook is told when a resource has sent initial presence, after
// the module has broadcast it (the offline-message module delivers stored
// messages then).
type AvailableHook interface {
	InitialPresence(ctx context.Context, res router.Resource)
}

// lockShards is the number of per-account locks that serialize the
// read-modify-write of roster items.
const lockShards = 64

// Module implements the roster, subscriptions and presence exchange for one
// router. It is safe for concurrent use.
type Module struct {
	r     *router.Router
	st    Store
	hooks []AvailableHook
	log   *slog.Logger

	seed  maphash.Seed
	locks [lockShards]sync.Mutex
	ids   atomic.Uint64 // roster push ids

	// directed holds, per full JID, the entities that resource sent
	// directed available presence to (RFC 6121 §4.6), so that an explicit
	// unavailable reaches them. The router keeps the same set for Ended.
	dmu      sync.Mutex
	directed map[jid.JID]map[jid.JID]struct{}
}

// New returns the module for r, storing rosters in st. hooks are called, in
// order, after each initial presence.
func New(r *router.Router, st Store, hooks ...AvailableHook) *Module {
	return &Module{
		r:     r,
		st:    st,
		hooks: hooks,
		log:   slog.New(slog.DiscardHandler),
		seed:  maphash.MakeSeed(),
	}
}

// SetLogger sets the logger for the failures that have no one to be
// reported to (a roster that cannot be loaded when a session ends). Wiring
// only.
func (m *Module) SetLogger(l *slog.Logger) {
	if l != nil {
		m.log = l
	}
}

// lockFor returns the lock that serializes roster changes of user.
func (m *Module) lockFor(user string) *sync.Mutex {
	return &m.locks[maphash.String(m.seed, user)%lockShards]
}

// HandleIQ answers a roster get or set (RFC 6121 §2.2, §2.3) from one of
// the user's own resources.
func (m *Module) HandleIQ(ctx context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	from, err := jid.Parse(iq.Get("from"))
	if err != nil {
		return nil, stanza.JIDMalformed
	}
	var to jid.JID
	if s := iq.Get("to"); s != "" {
		if to, err = jid.Parse(s); err != nil {
			return nil, stanza.JIDMalformed
		}
	}
	if from.Local() == "" || !m.r.IsLocal(from) || (!to.IsZero() && to.Bare() != from.Bare()) {
		return nil, stanza.Forbidden.WithText("a roster is only for its own account")
	}
	q := iq.First()
	if !q.Is(NS, "query") {
		return nil, stanza.BadRequest
	}
	switch iq.Get("type") {
	case "get":
		return m.get(ctx, from, q)
	case "set":
		return nil, m.set(ctx, from, q)
	}
	return nil, stanza.BadRequest
}

// get returns the roster, or nothing when the client's cached version is
// current (XEP-0237). It marks the resource interested (RFC 6121 §2.1.6).
func (m *Module) get(ctx context.Context, from jid.JID, q *xmlstream.Element) (*xmlstream.Element, error) {
	m.r.SetInterested(from)
	items, ver, err := m.st.Roster(ctx, from.Local())
	if err != nil {
		return nil, fmt.Errorf("load roster: %w", err)
	}
	if q.Has("ver") && ver != "" && q.Get("ver") == ver {
		return nil, nil
	}
	res := xmlstream.New(NS, "query", "ver", ver)
	for i := range items {
		if !items[i].Hidden {
			res.Append(itemElement(&items[i]))
		}
	}
	return res, nil
}

// set adds, updates or removes one roster item (RFC 6121 §2.3–2.5).
func (m *Module) set(ctx context.Context, from jid.JID, q *xmlstream.Element) error {
	children := q.Children()
	if len(children) != 1 || !children[0].Is(NS, "item") {
		return stanza.BadRequest.WithText("roster set needs exactly one item")
	}
	el := children[0]
	raw := el.Get("jid")
	if raw == "" {
		return stanza.BadRequest.WithText("item without jid")
	}
	contact, err := jid.Parse(raw)
	if err != nil {
		return stanza.JIDMalformed
	}
	if contact.IsFull() {
		return stanza.BadRequest.WithText("roster items are bare JIDs")
	}
	if contact == from.Bare() {
		return stanza.NotAllowed.WithText("cannot add yourself to your roster")
	}
	// RFC 6121 §2.1.2.5: any subscription value other than "remove" is
	// ignored, as is ask (§2.1.2.2) and approved (§2.1.2.1).
	if el.Get("subscription") == "remove" {
		return m.remove(ctx, from, contact)
	}
	name := el.Get("name")
	if len(name) > MaxNameLen {
		return stanza.NotAcceptable.WithText("name too long")
	}
	var groups []string
	for _, g := range el.Children() {
		if !g.Is(NS, "group") {
			continue
		}
		t := g.Text()
		switch {
		case t == "":
			return stanza.NotAcceptable.WithText("empty group name")
		case len(t) > MaxGroupLen:
			return stanza.NotAcceptable.WithText("group name too long")
		case contains(groups, t):
			return stanza.BadRequest.WithText("duplicate group")
		case len(groups) == MaxGroups:
			return stanza.NotAcceptable.WithText("too many groups")
		}
		groups = append(groups, t)
	}

	user := from.Local()
	mu := m.lockFor(user)
	mu.Lock()
	it, err := m.st.RosterItem(ctx, user, contact.String())
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		mu.Unlock()
		return fmt.Errorf("load roster item: %w", err)
	}
	it.JID = contact.String()
	it.Name = name
	it.Groups = groups
	it.Hidden = false
	if it.Subscription == "" {
		it.Subscription = storage.SubNone
	}
	ver, err := m.st.PutRosterItem(ctx, user, it)
	mu.Unlock()
	if err != nil {
		return fmt.Errorf("store roster item: %w", err)
	}
	m.push(from.Bare(), itemElement(&it), ver)
	return nil
}

// remove deletes an item and cancels the subscriptions both ways (RFC 6121
// §2.5.2).
func (m *Module) remove(ctx context.Context, from, contact jid.JID) error {
	user := from.Local()
	mu := m.lockFor(user)
	mu.Lock()
	it, err := m.st.RosterItem(ctx, user, contact.String())
	if errors.Is(err, storage.ErrNotFound) {
		mu.Unlock()
		return stanza.ItemNotFound
	}
	if err != nil {
		mu.Unlock()
		return fmt.Errorf("load roster item: %w", err)
	}
	ver, err := m.st.DeleteRosterItem(ctx, user, contact.String())
	mu.Unlock()
	if errors.Is(err, storage.ErrNotFound) {
		return stanza.ItemNotFound
	}
	if err != nil {
		return fmt.Errorf("delete roster item: %w", err)
	}
	bare := from.Bare()
	if !it.Hidden {
		m.push(bare, xmlstream.New(NS, "item", "jid", it.JID, "subscription", "remove"), ver)
	}
	s := stateOf(&it)
	if s.to || s.out {
		m.r.Route(ctx, presence("unsubscribe", bare, contact))
	}
	if s.from || s.in {
		m.r.Route(ctx, presence("unsubscribed", bare, contact))
	}
	if s.from {
		m.sendUnavailable(ctx, bare, contact)
	}
	return nil
}

// push sends a roster push of item to every interested resource of bare
// (RFC 6121 §2.1.6). The query element is shared by the pushes.
func (m *Module) push(bare jid.JID, item *xmlstream.Element, ver string) {
	var q *xmlstream.Element
	for _, res := range m.r.Resources(bare) {
		if !res.Interested {
			continue
		}
		if q == nil {
			q = xmlstream.New(NS, "query", "ver", ver).Append(item)
		}
		id := "push" + strconv.FormatUint(m.ids.Add(1), 10)
		iq := xmlstream.New(xmlstream.NSClient, stanza.KindIQ, "type", "set", "id", id, "to", res.JID.String())
		res.Session.Send(iq.Append(q))
	}
}

// itemElement returns the <item/> of a roster get or push for it.
func itemElement(it *storage.RosterItem) *xmlstream.Element {
	sub := it.Subscription
	if sub == "" {
		sub = storage.SubNone
	}
	el := xmlstream.New(NS, "item", "jid", it.JID, "name", it.Name, "subscription", sub)
	if it.Ask {
		el.SetAttr("ask", "subscribe")
	}
	if it.Approved {
		el.SetAttr("approved", "true")
	}
	for _, g := range it.Groups {
		el.Append(xmlstream.New(NS, "group").SetText(g))
	}
	return el
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
