// Package stanza holds the XMPP stanza and stream error values of RFC 6120
// (§4.9 stream errors, §8.3 stanza errors) and small helpers to build
// replies. Errors are Go values: handlers return them, and exactly one
// boundary (the connection) turns them into XML.
package stanza
