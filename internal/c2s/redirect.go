package c2s

import (
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// Redirector sends new clients to another node of a cluster when this node
// is full (load sharing, RFC 6120 §4.9.3.19 see-other-host). The server
// asks it once per TCP connection, when the client's first stream under
// TLS opens: after STARTTLS, or at once with direct TLS (XEP-0368), before
// SASL. A client may follow a redirect only from a server it has
// authenticated (RFC 6120 §4.9.3.19, erratum 3651), and a redirect in the
// clear could be forged.
//
// WebSocket clients (RFC 7395) are not asked about: a browser checks the
// certificate of a wss:// URL against the URL's host, so sending it to a
// node's own address would fail unless the certificate names every node;
// web clients find their endpoint through host-meta (XEP-0156) instead.
type Redirector interface {
	// Redirect reports whether a new client should go elsewhere (redirect),
	// and where: addr is "host:port" (an IPv6 host in brackets) of a node
	// serving the same kind of transport (the direct TLS port when
	// directTLS is set), or "" when no node has room, which refuses the
	// client with resource-constraint.
	Redirect(directTLS bool) (addr string, redirect bool)
}

// SetRedirector makes the server consult r when a new client opens its
// stream. Call it before Serve. Without a redirector (a single node, or no
// client limit) the server asks nothing and serves every client.
func (s *Server) SetRedirector(r Redirector) { s.redirector = r }

// seeOtherHostError ends a new client's stream with see-other-host, naming
// the node it should connect to instead.
type seeOtherHostError struct {
	addr string
}

func (e *seeOtherHostError) Error() string { return "stream error: see-other-host: " + e.addr }

// element is the stream error: the condition element carries the address
// (RFC 6120 §4.9.3.19), which a stanza.StreamError has no room for.
func (e *seeOtherHostError) element() *xmlstream.Element {
	return xmlstream.New(xmlstream.NSStream, "error").Append(
		xmlstream.New(stanza.NSStreamErrors, "see-other-host").SetText(e.addr),
		xmlstream.New(stanza.NSStreamErrors, "text").SetText("this node is full; please connect to "+e.addr),
	)
}

// errAllFull refuses a new client when no node of the cluster has room.
var errAllFull = stanza.StreamErr("resource-constraint",
	"every node of this server is full; please try again later")

// redirectAsk says whether openStream asks the redirector, and for which
// transport.
type redirectAsk uint8

const (
	askNone      redirectAsk = iota
	askDirectTLS             // the first stream of a direct TLS connection
	askStartTLS              // the stream opened right after STARTTLS
)

// redirect asks the server's redirector whether the client that opened
// its first stream under TLS on this connection belongs on another node;
// nil: serve it here. Only called when there is a redirector.
func (s *Session) redirect(directTLS bool) error {
	if _, ok := s.t.(*tcpTransport); !ok {
		return nil // WebSocket: not redirected (see Redirector)
	}
	addr, ok := s.srv.redirector.Redirect(directTLS)
	switch {
	case !ok:
		return nil
	case addr == "":
		return errAllFull
	}
	return &seeOtherHostError{addr: addr}
}
