// Package disco implements XEP-0030 (Service Discovery): disco#info and
// disco#items queries addressed to the server's domain or, answered by the
// server on the account's behalf, to a local account's bare JID.
//
// Nodes are not supported: a query with a node attribute gets
// item-not-found. Extended information (XEP-0128) is not offered yet.
package disco

import (
	"context"
	"slices"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// Namespaces of XEP-0030.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Identity is an identity of an entity (XEP-0030 §3.1), for example the
// server's category "server", type "im".
type Identity struct {
	Category string
	Type     string
	Name     string // optional human-readable name
}

// Item is an entity associated with the domain (XEP-0030 §4), for example a
// MUC or upload service.
type Item struct {
	JID  jid.JID
	Name string // optional
}

// Module answers disco#info and disco#items queries. Its exported fields are
// set while wiring, before stanzas flow, and never changed afterwards.
type Module struct {
	// AccountFeatures are the features the server offers on behalf of a
	// local account (disco#info to a bare JID, e.g. PEP). disco#info is
	// always included.
	AccountFeatures []string
	// Items are the entities listed by disco#items to the domain.
	Items []Item

	domain     jid.JID
	identities []Identity
	features   []string
}

// New returns a module for domain. identities defaults to server/im when
// empty; features always gets disco#info and disco#items added.
func New(domain jid.JID, identities []Identity, features []string) *Module {
	if len(identities) == 0 {
		identities = []Identity{{Category: "server", Type: "im"}}
	}
	return &Module{
		domain:     domain,
		identities: slices.Clone(identities),
		features:   normalize(features, NSInfo, NSItems),
	}
}

// Register wires the module's handlers into r.
func (m *Module) Register(r *router.Router) {
	r.HandleIQ(NSInfo, "query", m.HandleInfo())
	r.HandleIQ(NSItems, "query", m.HandleItems())
}

// HandleInfo returns the disco#info handler.
func (m *Module) HandleInfo() router.IQHandler { return router.IQHandlerFunc(m.info) }

// HandleItems returns the disco#items handler.
func (m *Module) HandleItems() router.IQHandler { return router.IQHandlerFunc(m.items) }

// normalize returns a sorted copy of features, with extra added, without
// duplicates or empty strings.
func normalize(features []string, extra ...string) []string {
	out := make([]string, 0, len(features)+len(extra))
	out = append(out, features...)
	out = append(out, extra...)
	out = slices.DeleteFunc(out, func(s string) bool { return s == "" })
	slices.Sort(out)
	return slices.Compact(out)
}

// check validates a query: get only, no node. It returns the target JID.
func check(iq *xmlstream.Element, ns string) (jid.JID, error) {
	if iq.Get("type") != "get" {
		return jid.JID{}, stanza.ServiceUnavailable
	}
	q := iq.Child(ns, "query")
	if q == nil {
		return jid.JID{}, stanza.BadRequest
	}
	if q.Get("node") != "" {
		return jid.JID{}, stanza.ItemNotFound.WithText("nodes are not supported")
	}
	to, err := jid.Parse(iq.Get("to"))
	if err != nil {
		return jid.JID{}, stanza.JIDMalformed
	}
	return to, nil
}

func (m *Module) info(_ context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	to, err := check(iq, NSInfo)
	if err != nil {
		return nil, err
	}
	q := xmlstream.New(NSInfo, "query")
	if to.Local() == "" {
		for _, id := range m.identities {
			q.Append(xmlstream.New(NSInfo, "identity",
				"category", id.Category, "type", id.Type, "name", id.Name))
		}
		appendFeatures(q, m.features, "")
		return q, nil
	}
	// The router has checked that the account exists.
	q.Append(xmlstream.New(NSInfo, "identity", "category", "account", "type", "registered"))
	appendFeatures(q, m.AccountFeatures, NSInfo)
	return q, nil
}

// appendFeatures adds a feature element for each of features and for extra
// (when not empty and not already listed).
func appendFeatures(q *xmlstream.Element, features []string, extra string) {
	if extra != "" && !slices.Contains(features, extra) {
		q.Append(xmlstream.New(NSInfo, "feature", "var", extra))
	}
	for _, f := range features {
		if f != "" {
			q.Append(xmlstream.New(NSInfo, "feature", "var", f))
		}
	}
}

func (m *Module) items(_ context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	to, err := check(iq, NSItems)
	if err != nil {
		return nil, err
	}
	q := xmlstream.New(NSItems, "query")
	if to.Local() != "" {
		return q, nil // nothing is listed for accounts
	}
	for _, it := range m.Items {
		q.Append(xmlstream.New(NSItems, "item", "jid", it.JID.String(), "name", it.Name))
	}
	return q, nil
}
