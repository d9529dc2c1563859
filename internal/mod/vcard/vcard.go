// Package vcard implements XEP-0054 vcard-temp: each account stores one
// vCard, which its owner sets and anyone may read.
//
// A get addressed to the sender's own bare JID (or with no to) returns the
// sender's vCard; a get addressed to another local account's bare JID
// returns that account's vCard (the router has already answered
// service-unavailable for an account that does not exist); a get addressed
// to the domain returns the server's vCard, which is empty. An account with
// no vCard has an empty one, <vCard xmlns='vcard-temp'/>. A set is accepted
// only from the account's owner, addressed to their own bare JID, and is
// refused with policy-violation when the serialised vCard is larger than the
// module's limit. The vCard is stored as given, serialised; a set replaces
// it whole.
package vcard

import (
	"context"
	"errors"
	"fmt"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/xmlstream"
)

// NS is the namespace of the vCard element, also the disco feature
// (XEP-0054 §4).
const NS = "vcard-temp"

// DefaultMax is the size limit of a serialised vCard used when New is given
// no positive limit: room for a small avatar photo.
const DefaultMax = 64 << 10

// Store is the storage the module needs; *sqlite.DB implements it.
type Store interface {
	// SetVCard replaces the serialised vCard of user, or fails with
	// storage.ErrNotFound when there is no such account.
	SetVCard(ctx context.Context, user string, xml []byte) error
	// VCard returns the serialised vCard of user, or storage.ErrNotFound
	// when there is none.
	VCard(ctx context.Context, user string) ([]byte, error)
}

// Module answers vCard gets and sets.
type Module struct {
	st  Store
	max int
}

var _ router.IQHandler = (*Module)(nil)

// New returns a module keeping vCards in st, each at most max bytes when
// serialised (DefaultMax if max <= 0).
func New(st Store, max int) *Module {
	if max <= 0 {
		max = DefaultMax
	}
	return &Module{st: st, max: max}
}

// Register wires the module into r.
func (m *Module) Register(r *router.Router) { r.HandleIQ(NS, "vCard", m) }

// HandleIQ answers a vCard get or set; see the package documentation.
func (m *Module) HandleIQ(ctx context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	from, err := jid.Parse(iq.Get("from"))
	if err != nil {
		return nil, stanza.JIDMalformed
	}
	to, err := jid.Parse(iq.Get("to"))
	if err != nil {
		return nil, stanza.JIDMalformed
	}
	switch iq.Get("type") {
	case "get":
		if to.Local() == "" {
			return empty(), nil
		}
		return m.get(ctx, to.Local())
	case "set":
		if to.Local() == "" || to.Bare() != from.Bare() {
			return nil, stanza.Forbidden.WithText("only the owner of an account may set its vCard")
		}
		return nil, m.set(ctx, to.Local(), iq.Child(NS, "vCard"))
	}
	return nil, stanza.BadRequest
}

// get returns the vCard of user, empty when none is stored.
func (m *Module) get(ctx context.Context, user string) (*xmlstream.Element, error) {
	data, err := m.st.VCard(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return empty(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("load vCard: %w", err)
	}
	v, err := xmlstream.ParseFrame(data, xmlstream.Limits{})
	if err != nil {
		return nil, fmt.Errorf("parse stored vCard of %q: %w", user, err)
	}
	if !v.Is(NS, "vCard") {
		return nil, fmt.Errorf("stored vCard of %q is a <%s xmlns='%s'/>", user, v.Name.Local, v.Name.Space)
	}
	return v, nil
}

// set stores v as the vCard of user.
func (m *Module) set(ctx context.Context, user string, v *xmlstream.Element) error {
	if v == nil {
		return stanza.BadRequest
	}
	data := xmlstream.AppendXML(nil, v, "")
	if len(data) > m.max {
		return stanza.PolicyViolation.WithText(fmt.Sprintf("the vCard has %d bytes; at most %d are allowed", len(data), m.max))
	}
	err := m.st.SetVCard(ctx, user, data)
	if errors.Is(err, storage.ErrNotFound) {
		return stanza.ItemNotFound
	}
	if err != nil {
		return fmt.Errorf("store vCard: %w", err)
	}
	return nil
}

// empty returns an empty vCard.
func empty() *xmlstream.Element { return xmlstream.New(NS, "vCard") }
