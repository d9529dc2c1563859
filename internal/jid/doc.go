// Package jid implements XMPP addresses (JIDs) as defined in RFC 7622.
//
// A JID has the form [localpart@]domainpart[/resourcepart]. Every JID value
// is already prepared and enforced, so two JIDs that denote the same address
// compare equal with ==, can be used as map keys, and their String form is
// canonical.
//
// # Preparation
//
//   - The localpart is enforced with the PRECIS UsernameCaseMapped profile
//     (RFC 8265) and must not contain any of the characters " & ' / : < > @
//     (RFC 7622 §3.3.1). As RFC 8265 says, the Bidi Rule is applied only to
//     names that contain right-to-left characters (x/text applies it to all
//     non-ASCII names, which would refuse "1josé").
//   - The domainpart is mapped and validated as an IDNA2008 domain name
//     (UTS #46 mapping, STD3 rules, A-labels converted to U-labels), or is an
//     IPv4 address or a bracketed IPv6 literal. One trailing dot is removed.
//     Labels are at most 63 octets in their ASCII (A-label) form.
//   - The resourcepart is enforced with the PRECIS OpaqueString profile.
//
// Each part is at most 1023 octets once prepared. A '@' or '/' followed (or
// preceded) by an empty part is an error.
//
// # Performance
//
// Parse is on the hot path of every stanza. Input that is already in
// canonical form and pure ASCII (no uppercase letters, no characters the
// profiles would map) is checked byte by byte without calling PRECIS or IDNA
// and without allocating: the returned JID shares the input string. ASCII
// input that only needs lowercasing costs one allocation per part. Anything
// else takes the full path.
//
// # Errors
//
// Every error returned by this package matches ErrMalformed with errors.Is;
// a server answers such input with the jid-malformed stream or stanza error.
package jid
