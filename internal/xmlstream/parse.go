package xmlstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The parser reads one top-level element (or the stream header) into raw,
// the element's bytes from its '<', and records its structure as spans of
// raw. Character data and attribute values are decoded in place: decoding
// only ever shortens them (an entity is longer than its character, "\r\n"
// becomes "\n", the markup of a CDATA section is dropped), so the decoded
// bytes are written over bytes already read. Once the element is complete,
// tree copies raw into one string and builds the Elements from slices of
// it, with one allocation each for the string, the elements, the
// attributes and the nodes.

// span is a range of parser.raw. A span with a negative off stands for a
// namespace that is not in raw: nsNone (no namespace), nsXML (NSXML) or a
// binding of the stream header, parser.base[nsBase-off].
type span struct{ off, end int32 }

const (
	nsNone = -1
	nsXML  = -2
	nsBase = -3
)

// qname is a name as written: prefix (empty if none) and local part.
type qname struct {
	prefix, local span
	kind          uint8
}

// Kinds of qname.
const (
	qPlain       = iota
	qXMLNS       // xmlns
	qXMLNSPrefix // xmlns:*
	qXMLPrefix   // xml:*
	qColonLocal  // a colon at the start or end, not namespace-well-formed
)

// decl is a namespace declaration in scope; an empty prefix declares the
// default namespace.
type decl struct{ prefix, uri span }

type elemRec struct {
	space        span
	name         qname
	parent       int32 // index in parser.elems, -1 for the top-level element
	attr0, attr1 int32 // range of parser.attrs
	nodes        int32 // number of child nodes
	mark         int32 // len(parser.ns) before the element's declarations
}

type attrRec struct{ space, local, value span }

// rawAttr is an attribute as written in the start tag.
type rawAttr struct {
	name  qname
	value span
}

// nodeRec is one child node, in document order: an element or text.
type nodeRec struct {
	parent, elem int32 // elem is -1 for text
	text         span
}

type parseMode uint8

const (
	modeStanza parseMode = iota // a child of the stream element, or the stream's end tag
	modeHeader                  // prolog, then the stream open tag
	modeFrame                   // prolog, then one complete element
)

type charMode uint8

const (
	inText charMode = iota
	inCDATA
	inAttr
)

// maxElemBytes bounds any element, whatever the limits: spans are int32.
const maxElemBytes = 1<<31 - 1

// errTooLarge is what more returns past the size limit.
var errTooLarge = errors.New("xmlstream: size limit reached")

type parser struct {
	raw  []byte // the element's bytes read so far
	pos  int    // next byte of raw to parse
	src  *source
	n    int   // bytes taken from src
	max  int   // limit on n (0: none)
	rerr error // sticky error of more
	mode parseMode
	lim  Limits
	base []binding // the stream header's declarations (modeStanza)

	ns    []decl
	elems []elemRec
	attrs []attrRec
	nodes []nodeRec
	stack []int32 // open elements
	tag   []rawAttr

	text    span // pending character data of the innermost open element
	hasText bool

	closing     bool  // modeStanza: met an end tag at depth 0,
	end         qname // this one (the stream's, if it matches)
	selfClosing bool  // modeHeader: the stream open tag ended with "/>"
}

func (p *parser) reset() {
	p.raw, p.pos, p.n, p.rerr = p.raw[:0], 0, 0, nil
	p.ns, p.elems, p.attrs, p.nodes = p.ns[:0], p.elems[:0], p.attrs[:0], p.nodes[:0]
	p.stack, p.tag = p.stack[:0], p.tag[:0]
	p.hasText, p.closing, p.selfClosing = false, false, false
}

// more reads more input into raw: at least one byte, or an error (io.EOF,
// errTooLarge or the source's), which then stays.
func (p *parser) more() error {
	if p.rerr != nil {
		return p.rerr
	}
	if p.src == nil {
		p.rerr = io.EOF
		return p.rerr
	}
	if p.max > 0 && p.n >= p.max || p.n >= maxElemBytes {
		p.rerr = errTooLarge
		return p.rerr
	}
	n, err := p.src.read(p, p.max-p.n)
	p.n += n
	if n == 0 {
		p.rerr = err
		return err
	}
	if err != nil {
		p.rerr = err // reported when the bytes read are used up
	}
	return nil
}

func (p *parser) peek() (byte, error) {
	if p.pos < len(p.raw) {
		return p.raw[p.pos], nil
	}
	if err := p.more(); err != nil {
		return 0, err
	}
	return p.raw[p.pos], nil
}

func (p *parser) next() (byte, error) {
	c, err := p.peek()
	if err == nil {
		p.pos++
	}
	return c, err
}

func (p *parser) bytes(s span) []byte { return p.raw[s.off:s.end] }

// space skips white space and reports whether there was any.
func (p *parser) space() (bool, error) {
	start := p.pos
	for {
		b, i := p.raw, p.pos
		for i < len(b) && charClass[b[i]]&cSpace != 0 {
			i++
		}
		p.pos = i
		if i < len(b) {
			return i > start, nil
		}
		if err := p.more(); err != nil {
			return i > start, err
		}
	}
}

// run parses up to the end of the top-level element (the start tag in
// modeHeader), or an end tag at depth 0 in modeStanza.
func (p *parser) run() error {
	prolog := p.mode != modeStanza
	for first := true; ; first = false {
		c, err := p.peek()
		if err != nil {
			return err
		}
		if c != '<' {
			if err := p.charData(prolog); err != nil {
				return err
			}
			continue
		}
		p.pos++
		if c, err = p.next(); err != nil {
			return err
		}
		done := false
		switch c {
		case '/':
			done, err = p.endTag()
		case '?':
			err = p.procInst(prolog && first)
		case '!':
			err = p.bang(prolog)
		default:
			p.pos--
			done, err = p.startTag()
			prolog = false
		}
		if err != nil || done {
			return err
		}
	}
}

// outside is the error for character data outside the element.
func (p *parser) outside() error {
	if p.mode == modeStanza {
		return notWellFormed("text directly inside the stream")
	}
	return notWellFormed("text outside the element")
}

// charData reads character data up to the next '<'.
func (p *parser) charData(prolog bool) error {
	if len(p.stack) == 0 {
		start := p.pos
		w, err := p.chars(start, inText, 0)
		if _, syntax := err.(*Error); !syntax && (!prolog || !isSpace(p.raw[start:w])) {
			return p.outside()
		}
		return err
	}
	if !p.hasText {
		p.text = span{int32(p.pos), int32(p.pos)}
		p.hasText = true
	}
	w, err := p.chars(int(p.text.end), inText, 0)
	p.text.end = int32(w)
	return err
}

// chars reads character data from p.pos and writes it decoded from raw[w]
// on (w <= p.pos), returning the end of what it wrote. It stops before a
// '<' (inText), after "]]>" (inCDATA) or after the closing quote q (inAttr).
func (p *parser) chars(w int, mode charMode, q byte) (int, error) {
	mask := uint8(cText)
	switch mode {
	case inCDATA:
		mask = cCDATA
	case inAttr:
		mask = cAttr
	}
	rb1, rb2 := -1, -1 // positions of the last two ']' read
	for {
		b := p.raw
		r := p.pos
		for ; len(b)-r >= 4; r += 4 {
			x := b[r : r+4 : r+4]
			if (charClass[x[0]]|charClass[x[1]]|charClass[x[2]]|charClass[x[3]])&mask != 0 {
				break
			}
		}
		for r < len(b) && charClass[b[r]]&mask == 0 {
			r++
		}
		if w != p.pos {
			copy(b[w:], b[p.pos:r])
		}
		w += r - p.pos
		p.pos = r
		if r == len(b) {
			if err := p.more(); err != nil {
				return w, err
			}
			continue
		}
		switch c := b[r]; {
		case c >= utf8.RuneSelf:
			if !utf8.FullRune(b[r:]) {
				if err := p.more(); err != nil {
					if mode == inCDATA {
						return w, err
					}
					return w, notWellFormed("invalid UTF-8")
				}
				continue
			}
			ru, size := utf8.DecodeRune(b[r:])
			if ru == utf8.RuneError && size == 1 {
				return w, notWellFormed("invalid UTF-8")
			}
			if !isChar(ru) {
				return w, notWellFormed(fmt.Sprintf("illegal character code %U", ru))
			}
			copy(b[w:], b[r:r+size])
			w += size
			p.pos += size
		case c == '\r':
			b[w] = '\n'
			w++
			p.pos++
			if c, err := p.peek(); err == nil && c == '\n' {
				p.pos++
			}
		case c < ' ':
			return w, notWellFormed(fmt.Sprintf("illegal character code %U", rune(c)))
		case c == '<':
			if mode == inAttr {
				return w, notWellFormed("unescaped < inside quoted string")
			}
			return w, nil
		case c == '&':
			p.pos++
			var err error
			if w, err = p.reference(w); err != nil {
				return w, err
			}
		case c == q:
			p.pos++
			return w, nil
		case c == '>' && rb1 == r-1 && rb2 == r-2:
			if mode == inCDATA {
				p.pos++
				return w - 2, nil
			}
			return w, notWellFormed("unescaped ]]> not in CDATA section")
		default: // ']', '>', or the other quote
			if c == ']' {
				rb2, rb1 = rb1, r
			}
			b[w] = c
			w++
			p.pos++
		}
	}
}

// reference reads an entity or character reference after its '&' and
// writes its character at raw[w], returning the new w.
func (p *parser) reference(w int) (int, error) {
	c, err := p.next()
	if err != nil {
		return w, err
	}
	var r rune
	if c == '#' {
		base := uint64(10)
		if c, err = p.next(); err == nil && c == 'x' {
			base = 16
			c, err = p.next()
		}
		var v uint64
		digits := 0
		for err == nil {
			d := uint64(255)
			switch {
			case '0' <= c && c <= '9':
				d = uint64(c - '0')
			case base == 16 && 'a' <= c && c <= 'f':
				d = uint64(c-'a') + 10
			case base == 16 && 'A' <= c && c <= 'F':
				d = uint64(c-'A') + 10
			}
			if d == 255 {
				break
			}
			if v <= unicode.MaxRune {
				v = v*base + d
			}
			digits++
			c, err = p.next()
		}
		if err != nil {
			return w, err
		}
		if c != ';' || digits == 0 || v > unicode.MaxRune {
			return w, notWellFormed("invalid character reference")
		}
		if r = rune(v); !isChar(r) {
			// encoding/xml let references to surrogates through as U+FFFD.
			return w, notWellFormed(fmt.Sprintf("reference to character %U, not allowed in XML", r))
		}
	} else {
		p.pos--
		name, _, _, err := p.name()
		if err != nil {
			return w, err
		}
		if c, err = p.next(); err != nil {
			return w, err
		}
		switch string(p.bytes(name)) {
		case "lt":
			r = '<'
		case "gt":
			r = '>'
		case "amp":
			r = '&'
		case "apos":
			r = '\''
		case "quot":
			r = '"'
		}
		if c != ';' || r == 0 {
			return w, notWellFormed("invalid character entity")
		}
	}
	return w + utf8.EncodeRune(p.raw[w:], r), nil
}

// name reads an XML name as encoding/xml did: up to the first ASCII byte
// that cannot be part of a name. ok is false if that is not a valid name
// (nothing is read if no name starts here); acc has the class bits of all
// its bytes.
func (p *parser) name() (s span, acc uint8, ok bool, err error) {
	start := p.pos
	for {
		b, i := p.raw, p.pos
		for i < len(b) {
			c := charClass[b[i]]
			if c&cNameScan == 0 {
				break
			}
			acc |= c
			i++
		}
		p.pos = i
		if i < len(b) {
			break
		}
		if err := p.more(); err != nil {
			return span{}, 0, false, err
		}
	}
	s = span{int32(start), int32(p.pos)}
	switch {
	case p.pos == start:
		return s, acc, false, nil
	case acc&cText == 0: // all ASCII
		return s, acc, charClass[p.raw[start]]&cStart != 0, nil
	}
	return s, acc, validName(p.bytes(s)), nil
}

// qname reads a name and splits it at its colon. A name with more than one
// colon is refused with msg; one with a colon at either end is all local
// part, refused later by checkLocal.
func (p *parser) qname(msg string) (qname, error) {
	s, acc, ok, err := p.name()
	if err != nil {
		return qname{}, err
	}
	if !ok {
		return qname{}, notWellFormed(msg)
	}
	b := p.bytes(s)
	if acc&cColon == 0 {
		q := qname{prefix: span{s.off, s.off}, local: s}
		if string(b) == "xmlns" {
			q.kind = qXMLNS
		}
		return q, nil
	}
	i := bytes.IndexByte(b, ':')
	switch {
	case bytes.IndexByte(b[i+1:], ':') >= 0:
		return qname{}, notWellFormed(msg)
	case i == 0 || i == len(b)-1:
		return qname{prefix: span{s.off, s.off}, local: s, kind: qColonLocal}, nil
	}
	c := s.off + int32(i)
	q := qname{prefix: span{s.off, c}, local: span{c + 1, s.end}}
	switch string(b[:i]) {
	case "xmlns":
		q.kind = qXMLNSPrefix
	case "xml":
		q.kind = qXMLPrefix
	}
	return q, nil
}

// qstr formats a name as written, for messages.
func (p *parser) qstr(q qname) string {
	if q.prefix.off == q.prefix.end {
		return string(p.bytes(q.local))
	}
	return string(p.bytes(q.prefix)) + ":" + string(p.bytes(q.local))
}

// endTag reads an end tag after its "</"; done is true when it closes the
// top-level element or is the stream's end tag.
func (p *parser) endTag() (done bool, err error) {
	q, err := p.qname("expected element name after </")
	if err != nil {
		return false, err
	}
	if _, err := p.space(); err != nil {
		return false, err
	}
	if c, err := p.next(); err != nil || c != '>' {
		if err == nil {
			err = notWellFormed("invalid characters between </" + p.qstr(q) + " and >")
		}
		return false, err
	}
	if len(p.stack) == 0 {
		if p.mode == modeStanza {
			p.closing, p.end = true, q
			return true, nil
		}
		return false, notWellFormed("unexpected </" + p.qstr(q) + ">")
	}
	e := &p.elems[p.stack[len(p.stack)-1]]
	if !bytes.Equal(p.bytes(q.prefix), p.bytes(e.name.prefix)) || !bytes.Equal(p.bytes(q.local), p.bytes(e.name.local)) {
		return false, notWellFormed(fmt.Sprintf("<%s> closed by </%s>", p.qstr(e.name), p.qstr(q)))
	}
	return p.pop(), nil
}

// pop closes the innermost open element and reports whether it was the
// top-level one.
func (p *parser) pop() bool {
	i := p.stack[len(p.stack)-1]
	p.flushText(i)
	p.stack = p.stack[:len(p.stack)-1]
	p.ns = p.ns[:p.elems[i].mark]
	return len(p.stack) == 0
}

// flushText adds the pending character data to element i.
func (p *parser) flushText(i int32) {
	if p.hasText && p.text.end > p.text.off {
		p.nodes = append(p.nodes, nodeRec{parent: i, elem: -1, text: p.text})
		p.elems[i].nodes++
	}
	p.hasText = false
}

// procInst reads a processing instruction after its "<?". Only the XML
// declaration, where decl is true, is allowed.
func (p *parser) procInst(decl bool) error {
	target, _, ok, err := p.name()
	if err != nil {
		return err
	}
	if !ok {
		return notWellFormed("expected target name after <?")
	}
	if _, err := p.space(); err != nil {
		return err
	}
	start := p.pos
	for prev := byte(0); ; {
		c, err := p.next()
		if err != nil {
			return err
		}
		if prev == '?' && c == '>' {
			break
		}
		prev = c
	}
	if string(p.bytes(target)) == "xml" {
		content := string(p.raw[start : p.pos-2])
		if v := declParam("version", content); v != "" && v != "1.0" {
			return notWellFormed(fmt.Sprintf("unsupported XML version %q", v))
		}
		if enc := declParam("encoding", content); enc != "" && !strings.EqualFold(enc, "utf-8") {
			if p.mode == modeStanza {
				return restrictedXML("XML declaration inside the stream")
			}
			return &Error{Condition: "unsupported-encoding", Text: "only UTF-8 is supported"}
		}
		if decl {
			return nil
		}
	}
	return restrictedXML("processing instruction <?" + string(p.bytes(target)) + "?>")
}
