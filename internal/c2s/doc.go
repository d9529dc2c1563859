// Package c2s serves XMPP clients (RFC 6120 client-to-server streams, RFC
// 6121 for stanza handling via the router): plain TCP with STARTTLS, direct
// TLS (XEP-0368) and WebSocket (RFC 7395). It negotiates TLS, SASL (RFC
// 6120 §6 with SCRAM and channel binding, XEP-0440), resource binding and
// the optional session element, then hands stanzas to the router.
//
// Each connection has one reader goroutine, which owns the session state,
// and a bounded outbound queue. A writer goroutine exists only while there
// is something to write, so an idle session holds no writer.
//
// Go errors become stream errors at exactly one place: stream.Ending,
// called when a session ends (Session.finish).
package c2s
