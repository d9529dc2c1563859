package stanza

import (
	"errors"

	"casp3r/internal/xmlstream"
)

// Namespaces of the error conditions.
const (
	NSStanzaErrors = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
)

// Error types (RFC 6120 §8.3.2).
const (
	Auth     = "auth"
	Cancel   = "cancel"
	Continue = "continue"
	Modify   = "modify"
	Wait     = "wait"
)

// Error is a stanza error: a defined condition of RFC 6120 §8.3.3 with its
// type and an optional human-readable text.
type Error struct {
	Type      string
	Condition string
	Text      string
	By        string
}

func (e *Error) Error() string {
	if e.Text != "" {
		return "stanza error: " + e.Condition + ": " + e.Text
	}
	return "stanza error: " + e.Condition
}

// Is matches another *Error with the same condition.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Condition == e.Condition
}

// WithText returns a copy of e with text set.
func (e *Error) WithText(text string) *Error {
	c := *e
	c.Text = text
	return &c
}

func newErr(typ, cond string) *Error { return &Error{Type: typ, Condition: cond} }

// The conditions of RFC 6120 §8.3.3 with their usual types. They are
// templates: use them with errors.Is, or WithText for a copy.
var (
	BadRequest            = newErr(Modify, "bad-request")
	Conflict              = newErr(Cancel, "conflict")
	FeatureNotImplemented = newErr(Cancel, "feature-not-implemented")
	Forbidden             = newErr(Auth, "forbidden")
	Gone                  = newErr(Cancel, "gone")
	InternalServerError   = newErr(Cancel, "internal-server-error")
	ItemNotFound          = newErr(Cancel, "item-not-found")
	JIDMalformed          = newErr(Modify, "jid-malformed")
	NotAcceptable         = newErr(Modify, "not-acceptable")
	NotAllowed            = newErr(Cancel, "not-allowed")
	NotAuthorized         = newErr(Auth, "not-authorized")
	PolicyViolation       = newErr(Modify, "policy-violation")
	RecipientUnavailable  = newErr(Wait, "recipient-unavailable")
	Redirect              = newErr(Modify, "redirect")
	RegistrationRequired  = newErr(Auth, "registration-required")
	RemoteServerNotFound  = newErr(Cancel, "remote-server-not-found")
	RemoteServerTimeout   = newErr(Wait, "remote-server-timeout")
	ResourceConstraint    = newErr(Wait, "resource-constraint")
	ServiceUnavailable    = newErr(Cancel, "service-unavailable")
	SubscriptionRequired  = newErr(Auth, "subscription-required")
	UndefinedCondition    = newErr(Cancel, "undefined-condition")
	UnexpectedRequest     = newErr(Wait, "unexpected-request")
)

// Element returns the <error/> element for e, in namespace ns (the stream's
// content namespace, e.g. jabber:client).
func (e *Error) Element(ns string) *xmlstream.Element {
	el := xmlstream.New(ns, "error", "type", e.Type, "by", e.By)
	el.Append(xmlstream.New(NSStanzaErrors, e.Condition))
	if e.Text != "" {
		el.Append(xmlstream.New(NSStanzaErrors, "text").SetText(e.Text))
	}
	return el
}

// StanzaError returns err as a stanza error: itself if it is one, else
// internal-server-error.
func StanzaError(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return InternalServerError
}

// ParseError reads the condition and text of an <error/> child of st, if
// any.
func ParseError(st *xmlstream.Element) *Error {
	el := st.Child(st.Name.Space, "error")
	if el == nil {
		return nil
	}
	e := &Error{Type: el.Get("type")}
	for _, c := range el.Children() {
		if c.Name.Space != NSStanzaErrors {
			continue
		}
		if c.Name.Local == "text" {
			e.Text = c.Text()
		} else if e.Condition == "" {
			e.Condition = c.Name.Local
		}
	}
	if e.Condition == "" {
		e.Condition = UndefinedCondition.Condition
	}
	return e
}

// StreamError is a stream-level error (RFC 6120 §4.9.3); sending one closes
// the stream.
type StreamError struct {
	Condition string
	Text      string
}

func (e *StreamError) Error() string {
	if e.Text != "" {
		return "stream error: " + e.Condition + ": " + e.Text
	}
	return "stream error: " + e.Condition
}

// Element returns the <stream:error/> element.
func (e *StreamError) Element() *xmlstream.Element {
	el := xmlstream.New(xmlstream.NSStream, "error")
	el.Append(xmlstream.New(NSStreamErrors, e.Condition))
	if e.Text != "" {
		el.Append(xmlstream.New(NSStreamErrors, "text").SetText(e.Text))
	}
	return el
}

// Stream error constructors for the conditions the server sends.
func StreamErr(cond, text string) *StreamError { return &StreamError{Condition: cond, Text: text} }
