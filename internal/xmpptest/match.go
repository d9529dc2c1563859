package xmpptest

import "casp3r/internal/xmlstream"

// Matchers for Client.Expect.

// ByID matches a stanza with the id attribute id.
func ByID(id string) func(*xmlstream.Element) bool {
	return func(e *xmlstream.Element) bool { return e.Get("id") == id }
}

// IsMessage matches a message whose body is body.
func IsMessage(body string) func(*xmlstream.Element) bool {
	return func(e *xmlstream.Element) bool {
		return e.Name.Local == "message" && e.Child("", "body").Text() == body
	}
}

// IsPresence matches a presence from from of type typ ("" for available).
func IsPresence(from, typ string) func(*xmlstream.Element) bool {
	return func(e *xmlstream.Element) bool {
		return e.Name.Local == "presence" && e.Get("from") == from && e.Get("type") == typ
	}
}
