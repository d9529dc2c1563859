package xmlstream

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendXML appends the encoding of e to b. parentNS is the default namespace
// in scope where e is written (for example NSClient inside a client stream):
// e gets an xmlns declaration only when its namespace differs. Elements in
// the stream namespace are written with the conventional "stream:" prefix,
// which is taken as declared when parentNS is not empty (inside a stream
// whose header declared it) and declared on the element otherwise (a
// standalone element such as a WebSocket frame).
func AppendXML(b []byte, e *Element, parentNS string) []byte {
	b = slices.Grow(b, encodedSize(e))
	return appendXML(b, e, parentNS, parentNS != "")
}

// encodedSize is about the length of e's encoding: exact without escapes
// and with every namespace declared, so that AppendXML grows b once, not
// by doubling from a few bytes.
func encodedSize(e *Element) int {
	n := 2*len(e.Name.Local) + 5 // <name></name>
	if e.Name.Space != "" {
		n += len(e.Name.Space) + 9 // xmlns='…'
	}
	for _, a := range e.Attr {
		n += len(a.Name.Local) + len(a.Value) + 4
	}
	for _, c := range e.Nodes {
		if c.Elem != nil {
			n += encodedSize(c.Elem)
		} else {
			n += len(c.Text)
		}
	}
	return n
}

func appendXML(b []byte, e *Element, parentNS string, streamDeclared bool) []byte {
	b = append(b, '<')
	childNS := e.Name.Space
	if e.Name.Space == NSStream {
		b = append(b, "stream:"...)
		b = append(b, e.Name.Local...)
		if !streamDeclared {
			b = append(b, " xmlns:stream='"+NSStream+"'"...)
			streamDeclared = true
		}
		childNS = parentNS
	} else {
		b = append(b, e.Name.Local...)
		if e.Name.Space != parentNS {
			b = append(b, " xmlns='"...)
			b = appendEscaped(b, e.Name.Space, true)
			b = append(b, '\'')
		}
	}
	var prefixes []string // namespaces of prefixed attributes, declared as a0, a1…
	for _, a := range e.Attr {
		b = append(b, ' ')
		switch a.Name.Space {
		case "":
		case NSXML, "xml":
			b = append(b, "xml:"...)
		default:
			idx := -1
			for i, p := range prefixes {
				if p == a.Name.Space {
					idx = i
				}
			}
			if idx < 0 {
				prefixes = append(prefixes, a.Name.Space)
				idx = len(prefixes) - 1
				b = append(b, "xmlns:a"...)
				b = strconv.AppendInt(b, int64(idx), 10)
				b = append(b, "='"...)
				b = appendEscaped(b, a.Name.Space, true)
				b = append(b, "' "...)
			}
			b = append(b, 'a')
			b = strconv.AppendInt(b, int64(idx), 10)
			b = append(b, ':')
		}
		b = append(b, a.Name.Local...)
		b = append(b, "='"...)
		b = appendEscaped(b, a.Value, true)
		b = append(b, '\'')
	}
	if len(e.Nodes) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, n := range e.Nodes {
		if n.Elem != nil {
			b = appendXML(b, n.Elem, childNS, streamDeclared)
		} else {
			b = appendEscaped(b, n.Text, false)
		}
	}
	b = append(b, "</"...)
	if e.Name.Space == NSStream {
		b = append(b, "stream:"...)
	}
	b = append(b, e.Name.Local...)
	return append(b, '>')
}

// appendEscaped appends s with the XML special characters escaped. Characters
// not allowed in XML 1.0 are replaced by U+FFFD.
func appendEscaped(b []byte, s string, attr bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '<':
				b = append(b, "&lt;"...)
			case c == '>':
				b = append(b, "&gt;"...)
			case c == '&':
				b = append(b, "&amp;"...)
			case c == '\'' && attr:
				b = append(b, "&apos;"...)
			case c == '"' && attr:
				b = append(b, "&quot;"...)
			case c == '\r':
				b = append(b, "&#xD;"...)
			case (c == '\n' || c == '\t') && attr:
				b = append(b, "&#x"...)
				b = append(b, "0123456789ABCDEF"[c]) // only \t (9) and \n (A)
				b = append(b, ';')
			case c < 0x20 && c != '\n' && c != '\t':
				b = append(b, "\uFFFD"...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}
