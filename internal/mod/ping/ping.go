// Package ping implements XEP-0199 (XMPP Ping) for the server: a ping
// addressed to the domain, or by a user to their own bare JID, is answered
// with an empty result.
package ping

import (
	"context"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// NS is the namespace of the ping element.
const NS = "urn:xmpp:ping"

// Handler answers pings. The zero value is ready to use.
type Handler struct{}

var _ router.IQHandler = Handler{}

// Register wires the handler into r.
func Register(r *router.Router) { r.HandleIQ(NS, "ping", Handler{}) }

// HandleIQ answers a ping to the domain or to the sender's own bare JID
// with an empty result. A ping to another account's bare JID is not the
// server's to answer (service-unavailable), nor is an iq set.
func (Handler) HandleIQ(_ context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	if iq.Get("type") != "get" {
		return nil, stanza.ServiceUnavailable
	}
	to, err := jid.Parse(iq.Get("to"))
	if err != nil {
		return nil, stanza.JIDMalformed
	}
	if to.Local() == "" {
		return nil, nil
	}
	from, err := jid.Parse(iq.Get("from"))
	if err != nil {
		return nil, stanza.JIDMalformed
	}
	if to.Bare() != from.Bare() {
		return nil, stanza.ServiceUnavailable
	}
	return nil, nil
}
