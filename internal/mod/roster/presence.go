package roster

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/xmlstream"
)

// Presence types other than the subscription ones (RFC 6121 §4.7.1);
// "available" stands for no type attribute.
const (
	typeAvailable   = "available"
	typeUnavailable = "unavailable"
	typeProbe       = "probe"
	typeError       = "error"
)

// Outbound handles presence sent by a local client session, with from
// stamped to its full JID (router.PresenceHandler).
func (m *Module) Outbound(ctx context.Context, p *xmlstream.Element) error {
	from, err := jid.Parse(p.Get("from"))
	if err != nil || !from.IsFull() || !m.r.IsLocal(from) {
		return stanza.BadRequest.WithText("presence from a client needs its full JID")
	}
	var to jid.JID
	if s := p.Get("to"); s != "" {
		if to, err = jid.Parse(s); err != nil {
			return stanza.JIDMalformed.WithText("invalid 'to' address")
		}
	}
	typ := stanza.Type(p)
	switch {
	case typ == typeAvailable && to.IsZero():
		return m.available(ctx, from, p)
	case typ == typeUnavailable && to.IsZero():
		return m.unavailable(ctx, from, p)
	case typ == typeAvailable || typ == typeUnavailable:
		return m.directedPresence(ctx, from, to, p, typ == typeAvailable)
	case isSubscription(typ):
		if to.IsZero() {
			return stanza.BadRequest.WithText("subscription stanza without 'to'")
		}
		return m.outboundSubscription(ctx, p, typ, from, to)
	case typ == typeProbe:
		// Clients should leave probes to the server (§4.3), but one that
		// sends one gets it sent as the server would: from the bare JID.
		if to.IsZero() {
			return stanza.BadRequest.WithText("probe without 'to'")
		}
		m.r.Route(ctx, withAddr(p, from.Bare(), to.Bare()))
		return nil
	case typ == typeError:
		if !to.IsZero() {
			m.r.Route(ctx, p)
		}
		return nil
	}
	return stanza.BadRequest.WithText("unknown presence type")
}

// available handles initial or subsequent presence broadcast (RFC 6121
// §4.2.2, §4.4.2).
func (m *Module) available(ctx context.Context, from jid.JID, p *xmlstream.Element) error {
	stored := withAddr(p, from, jid.JID{})
	was := m.r.SetPresence(from, stored, priority(p))
	self, ok := m.r.Lookup(from)
	if !ok {
		return nil // unbound meanwhile
	}
	items, err := m.roster(ctx, from.Local())
	if err != nil {
		return err
	}
	m.broadcast(ctx, from, stored, items)
	if was {
		return nil
	}
	// Initial presence: this resource learns of the user's other
	// resources, of its contacts (by probing them) and of the requests
	// waiting for an answer.
	bare := from.Bare()
	for _, res := range m.r.Resources(bare) {
		if res.Available && res.JID != from && res.Presence != nil {
			self.Session.Send(withAddr(res.Presence, res.JID, from))
		}
	}
	for i := range items {
		s := stateOf(&items[i])
		if !s.to && !s.in {
			continue
		}
		contact, err := jid.Parse(items[i].JID)
		if err != nil {
			continue
		}
		if s.to {
			m.r.Route(ctx, presence(typeProbe, bare, contact))
		}
		if s.in {
			self.Session.Send(presence(typeSubscribe, contact, bare))
		}
	}
	for _, h := range m.hooks {
		h.InitialPresence(ctx, self)
	}
	return nil
}

// unavailable handles unavailable presence broadcast (RFC 6121 §4.5.2).
func (m *Module) unavailable(ctx context.Context, from jid.JID, p *xmlstream.Element) error {
	stored := withAddr(p, from, jid.JID{})
	was := m.r.SetPresence(from, nil, 0)
	directed := m.takeDirected(from)
	var items []storage.RosterItem
	if was {
		var err error
		if items, err = m.roster(ctx, from.Local()); err != nil {
			m.sendDirected(ctx, from, stored, directed, nil)
			return err
		}
		m.broadcast(ctx, from, stored, items)
	}
	m.sendDirected(ctx, from, stored, directed, items)
	return nil
}

// Ended broadcasts unavailable presence for a session that ended (RFC 6121
// §4.5.2): to the contacts and the other resources if it was available, and
// to the entities it sent directed presence to (router.PresenceHandler).
func (m *Module) Ended(ctx context.Context, res router.Resource, directed []jid.JID) {
	m.takeDirected(res.JID)
	un := presence(typeUnavailable, res.JID, jid.JID{})
	var items []storage.RosterItem
	if res.Available {
		var err error
		items, err = m.roster(ctx, res.JID.Local())
		if err != nil {
			m.log.Error("broadcast unavailable", "jid", res.JID.String(), "err", err)
		} else {
			m.broadcast(ctx, res.JID, un, items)
		}
	}
	m.sendDirected(ctx, res.JID, un, directed, items)
}

// broadcast sends p from the resource from to the contacts subscribed to
// the user's presence and to the user's available resources.
func (m *Module) broadcast(ctx context.Context, from jid.JID, p *xmlstream.Element, items []storage.RosterItem) {
	for i := range items {
		if !stateOf(&items[i]).from {
			continue
		}
		if contact, err := jid.Parse(items[i].JID); err == nil {
			m.r.Route(ctx, withAddr(p, from, contact))
		}
	}
	for _, res := range m.r.Resources(from.Bare()) {
		if res.Available {
			res.Session.Send(withAddr(p, from, res.JID))
		}
	}
}

// sendDirected sends p from from to the directed-presence targets that the
// broadcast to the subscribers in items did not already reach.
func (m *Module) sendDirected(ctx context.Context, from jid.JID, p *xmlstream.Element, directed []jid.JID, items []storage.RosterItem) {
	for _, to := range directed {
		if subscribed(items, to.Bare().String()) {
			continue
		}
		m.r.Route(ctx, withAddr(p, from, to))
	}
}

func subscribed(items []storage.RosterItem, bare string) bool {
	for i := range items {
		if items[i].JID == bare {
			return stateOf(&items[i]).from
		}
	}
	return false
}

// directedPresence routes presence sent to one entity (RFC 6121 §4.6) and
// remembers who got available presence outside of the broadcast, so that
// they learn when the resource goes away.
func (m *Module) directedPresence(ctx context.Context, from, to jid.JID, p *xmlstream.Element, available bool) error {
	if to.Bare() != from.Bare() {
		track := true
		if available {
			it, err := m.st.RosterItem(ctx, from.Local(), to.Bare().String())
			switch {
			case errors.Is(err, storage.ErrNotFound):
			case err != nil:
				return fmt.Errorf("load roster item: %w", err)
			default:
				track = !stateOf(&it).from
			}
		}
		if track {
			m.r.SetDirected(from, to, available)
			m.setDirected(from, to, available)
		}
	}
	m.r.Route(ctx, p)
	return nil
}

// setDirected records (or forgets) a directed-presence target of full.
func (m *Module) setDirected(full, to jid.JID, available bool) {
	m.dmu.Lock()
	defer m.dmu.Unlock()
	set := m.directed[full]
	if !available {
		delete(set, to)
		if len(set) == 0 {
			delete(m.directed, full)
		}
		return
	}
	if set == nil {
		if m.directed == nil {
			m.directed = make(map[jid.JID]map[jid.JID]struct{})
		}
		set = make(map[jid.JID]struct{}, 1)
		m.directed[full] = set
	}
	set[to] = struct{}{}
}

// takeDirected forgets and returns the directed-presence targets of full.
func (m *Module) takeDirected(full jid.JID) []jid.JID {
	m.dmu.Lock()
	defer m.dmu.Unlock()
	set := m.directed[full]
	if len(set) == 0 {
		return nil
	}
	delete(m.directed, full)
	out := make([]jid.JID, 0, len(set))
	for j := range set {
		out = append(out, j)
	}
	return out
}

// Inbound handles presence addressed to a local account, whatever its
// origin (router.PresenceHandler).
func (m *Module) Inbound(ctx context.Context, p *xmlstream.Element) error {
	from, err := jid.Parse(p.Get("from"))
	if err != nil || from.IsZero() {
		return stanza.JIDMalformed.WithText("invalid 'from' address")
	}
	to := from.Bare() // RFC 6120 §10.3: no 'to' is the sender's account
	if s := p.Get("to"); s != "" {
		if to, err = jid.Parse(s); err != nil {
			return stanza.JIDMalformed.WithText("invalid 'to' address")
		}
	}
	if to.Local() == "" {
		return nil
	}
	typ := stanza.Type(p)
	switch {
	case isSubscription(typ):
		return m.inboundSubscription(ctx, p, typ, from, to)
	case typ == typeProbe:
		return m.probe(ctx, from, to.Bare())
	case typ == typeAvailable || typ == typeUnavailable || typ == typeError:
		m.deliver(to, p)
		return nil
	}
	return stanza.BadRequest.WithText("unknown presence type")
}

// deliver sends presence to the resource a full JID names, or to every
// available resource of a bare JID (RFC 6121 §8.5.2.1.1, §8.5.3.1); it is
// dropped when there is none (§8.5.2.2.1, §8.5.3.2.1).
func (m *Module) deliver(to jid.JID, p *xmlstream.Element) {
	if to.IsFull() {
		if res, ok := m.r.Lookup(to); ok {
			res.Session.Send(p)
		}
		return
	}
	for _, res := range m.r.Resources(to) {
		if res.Available {
			res.Session.Send(p)
		}
	}
}

// probe answers a presence probe from prober to the local account contact
// (RFC 6121 §4.3.2): the last presence of each available resource if the
// prober is subscribed, else unsubscribed.
func (m *Module) probe(ctx context.Context, prober, contact jid.JID) error {
	if prober.Bare() == contact {
		return nil
	}
	it, err := m.st.RosterItem(ctx, contact.Local(), prober.Bare().String())
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("load roster item: %w", err)
	}
	if err != nil || !stateOf(&it).from {
		m.r.Route(ctx, presence(typeUnsubscribed, contact, prober.Bare()))
		return nil
	}
	n := 0
	for _, res := range m.r.Resources(contact) {
		if res.Available && res.Presence != nil {
			m.r.Route(ctx, withAddr(res.Presence, res.JID, prober))
			n++
		}
	}
	if n == 0 {
		m.r.Route(ctx, presence(typeUnavailable, contact, prober))
	}
	return nil
}

// sendAvailable sends the current presence of each available resource of
// user to contact (RFC 6121 §3.1.5).
func (m *Module) sendAvailable(ctx context.Context, user, contact jid.JID) {
	for _, res := range m.r.Resources(user) {
		if res.Available && res.Presence != nil {
			m.r.Route(ctx, withAddr(res.Presence, res.JID, contact))
		}
	}
}

// sendUnavailable sends unavailable presence from each available resource
// of user to contact (RFC 6121 §3.2.2).
func (m *Module) sendUnavailable(ctx context.Context, user, contact jid.JID) {
	for _, res := range m.r.Resources(user) {
		if res.Available {
			m.r.Route(ctx, presence(typeUnavailable, res.JID, contact))
		}
	}
}

// roster loads the roster of user; a missing account has none.
func (m *Module) roster(ctx context.Context, user string) ([]storage.RosterItem, error) {
	items, _, err := m.st.Roster(ctx, user)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("load roster: %w", err)
	}
	return items, nil
}

// presence returns a new presence stanza of type typ ("available" for
// none); a zero to is left out.
func presence(typ string, from, to jid.JID) *xmlstream.Element {
	if typ == typeAvailable {
		typ = ""
	}
	p := xmlstream.New(xmlstream.NSClient, stanza.KindPresence, "type", typ, "from", from.String())
	if !to.IsZero() {
		p.SetAttr("to", to.String())
	}
	return p
}

// withAddr returns a copy of st with from and to replaced (a zero JID
// leaves the attribute out). The copy shares the children of st: neither
// may be modified afterwards.
func withAddr(st *xmlstream.Element, from, to jid.JID) *xmlstream.Element {
	c := &xmlstream.Element{Name: st.Name, Nodes: st.Nodes[:len(st.Nodes):len(st.Nodes)]}
	n := 0
	for _, a := range st.Attr {
		if !isAddr(a) {
			n++
		}
	}
	if !from.IsZero() {
		n++
	}
	if !to.IsZero() {
		n++
	}
	// Exactly n: the copy may be kept as a session's last presence.
	c.Attr = make([]xml.Attr, 0, n)
	for _, a := range st.Attr {
		if !isAddr(a) {
			c.Attr = append(c.Attr, a)
		}
	}
	if !from.IsZero() {
		c.Attr = append(c.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: from.String()})
	}
	if !to.IsZero() {
		c.Attr = append(c.Attr, xml.Attr{Name: xml.Name{Local: "to"}, Value: to.String()})
	}
	return c
}

// isAddr reports whether a is the from or to of a stanza.
func isAddr(a xml.Attr) bool {
	return a.Name.Space == "" && (a.Name.Local == "from" || a.Name.Local == "to")
}

// priority returns the priority of an available presence (RFC 6121
// §4.7.2.3): 0 when absent or invalid, clamped to a signed byte.
func priority(p *xmlstream.Element) int {
	el := p.Child(p.Name.Space, "priority")
	if el == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(el.Text()))
	if err != nil {
		return 0
	}
	return min(max(n, -128), 127)
}
