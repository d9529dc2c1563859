// Package version implements XEP-0092 (Software Version) for the server's
// domain. The operating system is not disclosed, for privacy.
package version

import (
	"context"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// NS is the namespace of the version query.
const NS = "jabber:iq:version"

// Name is the software name the server reports.
const Name = "CASP3R"

// Module answers version queries.
type Module struct {
	version string
}

// New returns a module reporting version (e.g. "0.1.0"); an empty version
// is reported as "unknown".
func New(version string) *Module {
	if version == "" {
		version = "unknown"
	}
	return &Module{version: version}
}

var _ router.IQHandler = (*Module)(nil)

// Register wires the module into r.
func (m *Module) Register(r *router.Router) { r.HandleIQ(NS, "query", m) }

// HandleIQ answers a get to the domain with name and version. A query to an
// account's bare JID is not the server's to answer (service-unavailable):
// clients answer for themselves at their full JIDs.
func (m *Module) HandleIQ(_ context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	if iq.Get("type") != "get" {
		return nil, stanza.ServiceUnavailable
	}
	to, err := jid.Parse(iq.Get("to"))
	if err != nil {
		return nil, stanza.JIDMalformed
	}
	if to.Local() != "" {
		return nil, stanza.ServiceUnavailable
	}
	return xmlstream.New(NS, "query").Append(
		xmlstream.New(NS, "name").SetText(Name),
		xmlstream.New(NS, "version").SetText(m.version),
	), nil
}
