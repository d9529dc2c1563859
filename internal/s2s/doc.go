// Package s2s federates with other XMPP servers (RFC 6120 server-to-server
// streams): outgoing streams found through DNS SRV (_xmpps-server and
// _xmpp-server, XEP-0368) or the admin's static routes, incoming streams on
// the s2s ports, TLS required, authentication by SASL EXTERNAL with PKIX
// certificate validation or by Server Dialback (XEP-0220, keys per
// XEP-0185) where certificates do not validate and the admin allows it.
//
// Streams are unidirectional: stanzas to a domain go out on our outgoing
// stream to it; stanzas from it arrive on its incoming stream to us, where
// each one's from must be a domain that stream authenticated. The admin's
// policy decides which domains and which local users may federate at all.
package s2s
