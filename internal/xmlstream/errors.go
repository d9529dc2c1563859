package xmlstream

import "errors"

// Error is a stream-level failure found while reading: the peer sent
// something that RFC 6120 answers with a stream error. Condition is the
// defined condition to send (RFC 6120 §4.9.3), for example "not-well-formed",
// "restricted-xml", "policy-violation" or "invalid-namespace"; Text says what
// was wrong, in English, for logs and the optional <text/> child.
type Error struct {
	Condition string
	Text      string
}

func (e *Error) Error() string {
	if e.Text == "" {
		return "xmlstream: " + e.Condition
	}
	return "xmlstream: " + e.Condition + ": " + e.Text
}

// Is reports whether target is an *Error with the same condition (and the
// same text, if target has one), so that
// errors.Is(err, &xmlstream.Error{Condition: "policy-violation"}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Condition == e.Condition && (t.Text == "" || t.Text == e.Text)
}

// ErrClosed is returned by Reader.Next once the peer has closed its stream
// with </stream:stream>. (Over WebSocket the caller recognizes the <close/>
// frame itself.)
var ErrClosed = errors.New("xmlstream: stream closed by peer")

// notWellFormed, restrictedXML and policyViolation build the errors the
// reader returns.
func notWellFormed(text string) *Error { return &Error{Condition: "not-well-formed", Text: text} }
func restrictedXML(text string) *Error { return &Error{Condition: "restricted-xml", Text: text} }
func policyViolation(text string) *Error {
	return &Error{Condition: "policy-violation", Text: text}
}
