package xmlstream

import (
	"encoding/xml"
	"strings"
)

// Namespace URIs used throughout the server.
const (
	NSClient  = "jabber:client"
	NSServer  = "jabber:server"
	NSStream  = "http://etherx.jabber.org/streams"
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	NSXML     = "http://www.w3.org/XML/1998/namespace"
)

// Element is one XML element with its attributes and content, in document
// order. Name.Space always holds the resolved namespace URI; Attr never holds
// namespace declarations (xmlns, xmlns:*), which the encoder derives. An
// attribute in the xml: namespace has Name.Space == NSXML.
type Element struct {
	Name  xml.Name
	Attr  []xml.Attr
	Nodes []Node
}

// Node is one piece of element content: either a child element or text.
type Node struct {
	Elem *Element // nil for text
	Text string
}

// New returns an element with the given namespace and local name and
// attributes given as name, value pairs; empty values are left out.
func New(space, local string, attrs ...string) *Element {
	e := &Element{Name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			e.SetAttr(attrs[i], attrs[i+1])
		}
	}
	return e
}

// Is reports whether e has the given namespace and local name.
func (e *Element) Is(space, local string) bool {
	return e != nil && e.Name.Local == local && e.Name.Space == space
}

// Get returns the value of the unqualified attribute local, or "".
func (e *Element) Get(local string) string {
	for _, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// Has reports whether the unqualified attribute local is present.
func (e *Element) Has(local string) bool {
	for _, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return true
		}
	}
	return false
}

// SetAttr sets the unqualified attribute local to value, replacing it if
// present. An empty value removes the attribute.
func (e *Element) SetAttr(local, value string) *Element {
	for i, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			if value == "" {
				e.Attr = append(e.Attr[:i], e.Attr[i+1:]...)
			} else {
				e.Attr[i].Value = value
			}
			return e
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
	return e
}

// Lang returns the xml:lang attribute.
func (e *Element) Lang() string {
	for _, a := range e.Attr {
		if a.Name.Local == "lang" && a.Name.Space == NSXML {
			return a.Value
		}
	}
	return ""
}

// Append adds children and returns e.
func (e *Element) Append(children ...*Element) *Element {
	for _, c := range children {
		if c != nil {
			e.Nodes = append(e.Nodes, Node{Elem: c})
		}
	}
	return e
}

// SetText replaces the content of e with text.
func (e *Element) SetText(text string) *Element {
	e.Nodes = e.Nodes[:0]
	if text != "" {
		e.Nodes = append(e.Nodes, Node{Text: text})
	}
	return e
}

// Text returns the concatenated character data directly inside e.
func (e *Element) Text() string {
	if e == nil {
		return ""
	}
	if len(e.Nodes) == 1 && e.Nodes[0].Elem == nil {
		return e.Nodes[0].Text
	}
	var b strings.Builder
	for _, n := range e.Nodes {
		if n.Elem == nil {
			b.WriteString(n.Text)
		}
	}
	return b.String()
}

// Children returns the child elements of e.
func (e *Element) Children() []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, n := range e.Nodes {
		if n.Elem != nil {
			out = append(out, n.Elem)
		}
	}
	return out
}

// First returns the first child element, or nil.
func (e *Element) First() *Element {
	if e == nil {
		return nil
	}
	for _, n := range e.Nodes {
		if n.Elem != nil {
			return n.Elem
		}
	}
	return nil
}

// Child returns the first child with the given namespace and local name, or
// nil. An empty space matches any namespace.
func (e *Element) Child(space, local string) *Element {
	if e == nil {
		return nil
	}
	for _, n := range e.Nodes {
		if n.Elem != nil && n.Elem.Name.Local == local && (space == "" || n.Elem.Name.Space == space) {
			return n.Elem
		}
	}
	return nil
}

// RemoveChildren removes every child with the given namespace and local
// name (an empty local removes all in the namespace).
func (e *Element) RemoveChildren(space, local string) {
	out := e.Nodes[:0]
	for _, n := range e.Nodes {
		if n.Elem != nil && n.Elem.Name.Space == space && (local == "" || n.Elem.Name.Local == local) {
			continue
		}
		out = append(out, n)
	}
	for i := len(out); i < len(e.Nodes); i++ {
		e.Nodes[i] = Node{}
	}
	e.Nodes = out
}

// Copy returns a deep copy of e.
func (e *Element) Copy() *Element {
	if e == nil {
		return nil
	}
	c := &Element{Name: e.Name}
	if len(e.Attr) > 0 {
		c.Attr = append([]xml.Attr(nil), e.Attr...)
	}
	if len(e.Nodes) > 0 {
		c.Nodes = make([]Node, len(e.Nodes))
		for i, n := range e.Nodes {
			if n.Elem != nil {
				c.Nodes[i] = Node{Elem: n.Elem.Copy()}
			} else {
				c.Nodes[i] = n
			}
		}
	}
	return c
}

// String returns the XML encoding of e with its namespace declared.
func (e *Element) String() string {
	return string(AppendXML(nil, e, ""))
}

// CopyNS returns a deep copy of e in which every element in namespace from
// is in namespace to instead: stanzas cross between jabber:client and
// jabber:server this way.
func (e *Element) CopyNS(from, to string) *Element {
	c := &Element{Name: e.Name}
	if c.Name.Space == from {
		c.Name.Space = to
	}
	if len(e.Attr) > 0 {
		c.Attr = append([]xml.Attr(nil), e.Attr...)
	}
	if len(e.Nodes) > 0 {
		c.Nodes = make([]Node, len(e.Nodes))
		for i, n := range e.Nodes {
			if n.Elem != nil {
				c.Nodes[i] = Node{Elem: n.Elem.CopyNS(from, to)}
			} else {
				c.Nodes[i] = n
			}
		}
	}
	return c
}
