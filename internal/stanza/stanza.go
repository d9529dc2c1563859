package stanza

import "casp3r/internal/xmlstream"

// Kinds of stanza, by element name.
const (
	KindMessage  = "message"
	KindPresence = "presence"
	KindIQ       = "iq"
)

// IsStanza reports whether el is a message, presence or iq in namespace ns.
func IsStanza(el *xmlstream.Element, ns string) bool {
	if el.Name.Space != ns {
		return false
	}
	switch el.Name.Local {
	case KindMessage, KindPresence, KindIQ:
		return true
	}
	return false
}

// Type returns the stanza's type attribute with RFC 6120/6121 defaults:
// "normal" for message, "available" for presence ("" on the wire).
func Type(el *xmlstream.Element) string {
	t := el.Get("type")
	if t != "" {
		return t
	}
	switch el.Name.Local {
	case KindMessage:
		return "normal"
	case KindPresence:
		return "available"
	}
	return ""
}

// ErrorReply builds the error response to st: addresses swapped, type
// "error", the original children kept (RFC 6120 §8.3.1), and the error
// element appended. It returns nil for a stanza of type error, which must
// never be answered with an error.
func ErrorReply(st *xmlstream.Element, e *Error) *xmlstream.Element {
	if st.Get("type") == "error" {
		return nil
	}
	r := st.Copy()
	r.SetAttr("from", st.Get("to"))
	r.SetAttr("to", st.Get("from"))
	r.SetAttr("type", "error")
	return r.Append(e.Element(st.Name.Space))
}

// Result builds the result of iq: addresses swapped, same id, type result,
// with payload (which may be nil).
func Result(iq *xmlstream.Element, payload *xmlstream.Element) *xmlstream.Element {
	r := xmlstream.New(iq.Name.Space, KindIQ, "type", "result", "id", iq.Get("id"),
		"from", iq.Get("to"), "to", iq.Get("from"))
	return r.Append(payload)
}
