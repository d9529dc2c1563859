// Package router decides where every stanza goes (RFC 6120 §10, RFC 6121
// §8): to a bound client resource, to a server-side handler acting for an
// account or the domain, to offline storage, or (later) to another node or
// server. c2s, s2s and feature modules hand stanzas to the router and never
// to each other.
//
// The router owns the table of bound resources and their presence state.
// Feature modules plug in through small interfaces (IQHandler,
// PresenceHandler, OfflineStore) wired explicitly by package server.
package router
