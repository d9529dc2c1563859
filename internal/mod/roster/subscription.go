package roster

import (
	"context"
	"errors"
	"fmt"

	"casp3r/internal/jid"
	"casp3r/internal/storage"
	"casp3r/internal/xmlstream"
)

// Presence types of the subscription stanzas (RFC 6121 §3).
const (
	typeSubscribe    = "subscribe"
	typeSubscribed   = "subscribed"
	typeUnsubscribe  = "unsubscribe"
	typeUnsubscribed = "unsubscribed"
)

func isSubscription(typ string) bool {
	switch typ {
	case typeSubscribe, typeSubscribed, typeUnsubscribe, typeUnsubscribed:
		return true
	}
	return false
}

// subState is the subscription state of one roster item in the terms of
// RFC 6121 Appendix A: to and from are the established subscriptions (the
// user receives the contact's presence, the contact receives the user's),
// out and in the pending requests, approved a pre-approval (§3.4).
// Invariants: out implies !to, in implies !from, approved implies !from.
type subState struct{ to, from, out, in, approved bool }

func stateOf(it *storage.RosterItem) subState {
	return subState{
		to:       it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth,
		from:     it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth,
		out:      it.Ask,
		in:       it.PendingIn,
		approved: it.Approved,
	}
}

// setOn writes s into it.
func (s subState) setOn(it *storage.RosterItem) {
	switch {
	case s.to && s.from:
		it.Subscription = storage.SubBoth
	case s.to:
		it.Subscription = storage.SubTo
	case s.from:
		it.Subscription = storage.SubFrom
	default:
		it.Subscription = storage.SubNone
	}
	it.Ask, it.PendingIn, it.Approved = s.out, s.in, s.approved
}

// shown is the part of s a roster item shows (RFC 6121 §2.1.2): all but the
// pending-in request.
func (s subState) shown() subState {
	s.in = false
	return s
}

// outbound returns the state after the user sends a subscription stanza of
// type typ to the contact (RFC 6121 Appendix A.2).
func outbound(s subState, typ string) subState {
	switch typ {
	case typeSubscribe:
		if !s.to {
			s.out = true
		}
	case typeUnsubscribe:
		s.to, s.out = false, false
	case typeSubscribed:
		switch {
		case s.in:
			s.from, s.in, s.approved = true, false, false
		case !s.from:
			s.approved = true // pre-approval (§3.4)
		}
	case typeUnsubscribed:
		s.from, s.in, s.approved = false, false, false
	}
	return s
}

// inbound returns the state after the user receives a subscription stanza
// of type typ from the contact (RFC 6121 Appendix A.3).
func inbound(s subState, typ string) subState {
	switch typ {
	case typeSubscribe:
		switch {
		case s.from:
			// already subscribed: auto-reply, no change
		case s.approved:
			s.from, s.approved = true, false
		default:
			s.in = true
		}
	case typeUnsubscribe:
		s.from, s.in = false, false
	case typeSubscribed:
		if s.out {
			s.to, s.out = true, false
		}
	case typeUnsubscribed:
		s.to, s.out = false, false
	}
	return s
}

// outcome is the result of applying a subscription stanza to one item.
type outcome struct {
	before, after subState
	item          storage.RosterItem // the item after the change
	ver           string             // the roster version after the change
	push          bool               // the item as the user sees it changed
}

// apply runs the transition of a subscription stanza of type typ, sent
// (out) or received by user, on user's item for contact, and stores the
// result. An item created by an inbound request is hidden until the user
// acts on it; a hidden item left with no state is deleted.
func (m *Module) apply(ctx context.Context, user string, contact jid.JID, out bool, typ string) (outcome, error) {
	mu := m.lockFor(user)
	mu.Lock()
	defer mu.Unlock()
	it, err := m.st.RosterItem(ctx, user, contact.String())
	exists := err == nil
	if errors.Is(err, storage.ErrNotFound) {
		it = storage.RosterItem{JID: contact.String(), Subscription: storage.SubNone, Hidden: true}
	} else if err != nil {
		return outcome{}, fmt.Errorf("load roster item: %w", err)
	}
	o := outcome{before: stateOf(&it)}
	if out {
		o.after = outbound(o.before, typ)
	} else {
		o.after = inbound(o.before, typ)
	}
	if o.after == o.before {
		o.item = it
		return o, nil
	}
	wasHidden := it.Hidden
	o.after.setOn(&it)
	if out && o.after.shown() != (subState{}) {
		it.Hidden = false
	}
	o.item = it
	if it.Hidden && o.after == (subState{}) {
		if exists {
			if _, err := m.st.DeleteRosterItem(ctx, user, it.JID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return o, fmt.Errorf("delete roster item: %w", err)
			}
		}
		return o, nil
	}
	o.ver, err = m.st.PutRosterItem(ctx, user, it)
	if err != nil {
		return o, fmt.Errorf("store roster item: %w", err)
	}
	o.push = !it.Hidden && (wasHidden || o.before.shown() != o.after.shown())
	return o, nil
}

// outboundSubscription applies RFC 6121 §3 to a subscription stanza of
// type typ sent by the local resource from to to: the user's item changes
// (and is pushed), and the stanza goes on to the contact from the user's
// bare JID.
func (m *Module) outboundSubscription(ctx context.Context, p *xmlstream.Element, typ string, from, to jid.JID) error {
	user, contact := from.Bare(), to.Bare()
	if user == contact {
		return nil // one is always subscribed to oneself (§3.1)
	}
	o, err := m.apply(ctx, user.Local(), contact, true, typ)
	if err != nil {
		return fmt.Errorf("outbound %s: %w", typ, err)
	}
	if o.push {
		m.push(user, itemElement(&o.item), o.ver)
	}
	fwd := withAddr(p, user, contact)
	switch typ {
	case typeSubscribe, typeUnsubscribe:
		// §3.1.2, §3.3.2: routed whatever the state, so that the contact's
		// server can answer (or resynchronize).
		m.r.Route(ctx, fwd)
	case typeSubscribed:
		// §3.1.5: only an approval of a pending request goes out; a
		// pre-approval (§3.4) stays here.
		if o.after.from && !o.before.from {
			m.r.Route(ctx, fwd)
			m.sendAvailable(ctx, user, contact)
		}
	case typeUnsubscribed:
		if o.before.approved {
			return nil // cancelled a pre-approval only (§3.4)
		}
		// §3.2.2: cancel (or deny), then stop sending presence.
		m.r.Route(ctx, fwd)
		if o.before.from {
			m.sendUnavailable(ctx, user, contact)
		}
	}
	return nil
}

// inboundSubscription applies RFC 6121 §3 to a subscription stanza of type
// typ that from sent to the local account to.
func (m *Module) inboundSubscription(ctx context.Context, p *xmlstream.Element, typ string, from, to jid.JID) error {
	contact, user := from.Bare(), to.Bare()
	if user == contact {
		return nil
	}
	o, err := m.apply(ctx, user.Local(), contact, false, typ)
	if errors.Is(err, storage.ErrNotFound) {
		// No such account (§3.1.3): deny a request, drop the rest.
		if typ == typeSubscribe {
			m.r.Route(ctx, presence(typeUnsubscribed, user, contact))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("inbound %s: %w", typ, err)
	}
	if o.push {
		m.push(user, itemElement(&o.item), o.ver)
	}
	fwd := withAddr(p, contact, user)
	switch typ {
	case typeSubscribe:
		if o.after.from {
			// Already subscribed or pre-approved (§3.1.3, §3.4): answer
			// for the user, who is not asked.
			m.r.Route(ctx, presence(typeSubscribed, user, contact))
			m.sendAvailable(ctx, user, contact)
			return nil
		}
		// Kept as pending-in; delivered now to the resources that can
		// answer, again at each initial presence until answered.
		m.deliverInterested(user, fwd)
	case typeUnsubscribe:
		if o.after == o.before {
			return nil // §3.3.3: no state change, not delivered
		}
		m.deliverInterested(user, fwd)
		if o.before.from {
			m.sendUnavailable(ctx, user, contact)
		}
	case typeSubscribed, typeUnsubscribed:
		if o.after == o.before {
			return nil // §3.1.6, §3.2.3: unsolicited, ignored
		}
		m.deliverInterested(user, fwd)
	}
	return nil
}

// deliverInterested sends st to the available resources of bare that
// requested the roster (RFC 6121 §3.1.3).
func (m *Module) deliverInterested(bare jid.JID, st *xmlstream.Element) {
	for _, res := range m.r.Resources(bare) {
		if res.Available && res.Interested {
			res.Session.Send(st)
		}
	}
}
