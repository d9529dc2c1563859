// The encoding/xml based reader that the package used before its own
// tokenizer, kept as the reference for FuzzDifferential (diff_test.go).
// Only its names have changed.

package xmlstream

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Reader reads one XML stream: ReadHeader, then Next until it fails. It is not
// safe for concurrent use.
type refReader struct {
	src    refCountReader
	lim    Limits
	base   []refBinding // namespace declarations on the stream open tag
	stream xml.Name     // the stream open tag's raw (prefix, local) name
	hdr    bool         // header read
	closed bool         // the stream open tag was self-closing
	err    error        // sticky failure
}

// NewReader returns a reader of the stream in r. If r is an io.ByteReader (a
// *bufio.Reader, say) it is read directly, one byte at a time, and never reads
// past the end of the element it returns; otherwise a small buffer is put under
// it.
func newRefReader(r io.Reader, lim Limits) *refReader {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = bufio.NewReaderSize(r, readBufSize)
	}
	return &refReader{src: refCountReader{r: br, back: -1}, lim: lim}
}

// SetLimits changes the limits from the next element on, for example to raise
// the stanza size limit after authentication.
func (r *refReader) SetLimits(lim Limits) { r.lim = lim }

// Reset prepares r for a stream restart (RFC 6120 §4.3.3), as after SASL
// success: it forgets the header and any failure, but keeps the bytes already
// buffered in the underlying reader. Call ReadHeader next. After STARTTLS,
// make a new Reader on the TLS connection instead.
func (r *refReader) Reset() {
	r.src.start(0)
	r.src.err = nil
	r.base = nil
	r.stream = xml.Name{}
	r.hdr = false
	r.closed = false
	r.err = nil
}

// ReadHeader reads the optional XML declaration and the stream open tag.
// A wrong element or namespace is an *Error with condition
// "invalid-namespace" (or "bad-namespace-prefix" if the stream prefix is not
// declared); a non-UTF-8 encoding declaration is "unsupported-encoding".
// Other errors are as for Next.
func (r *refReader) ReadHeader() (Header, error) {
	if r.err != nil {
		return Header{}, r.err
	}
	if r.hdr {
		return Header{}, errors.New("xmlstream: header already read")
	}
	if err := r.begin(maxHeaderBytes); err != nil {
		return Header{}, err
	}
	p := refParser{src: &r.src, mode: refModeHeader, ns: make([]refBinding, 0, 8)}
	e, err := p.run()
	r.src.start(0)
	if err != nil {
		return Header{}, r.fail(err)
	}
	if !e.Is(NSStream, "stream") {
		return Header{}, r.fail(&Error{Condition: "invalid-namespace",
			Text: fmt.Sprintf("expected <stream> in %s, got <%s> in %q", NSStream, e.Name.Local, e.Name.Space)})
	}
	def, _ := refLookup(p.ns, "")
	if def != NSClient && def != NSServer {
		return Header{}, r.fail(&Error{Condition: "invalid-namespace",
			Text: fmt.Sprintf("unsupported content namespace %q", def)})
	}
	// Keep a little room for the declarations of stanzas, which are
	// appended to the header's in place.
	r.base = append(make([]refBinding, 0, len(p.ns)+4), p.ns...)
	r.stream = p.raw
	r.hdr = true
	// A self-closing open tag ends the stream at once: the byte before the
	// final '>' is '/' only for "/>".
	r.closed = r.src.prev == '/'
	return Header{
		To:        e.Get("to"),
		From:      e.Get("from"),
		ID:        e.Get("id"),
		Version:   e.Get("version"),
		Lang:      e.Lang(),
		DefaultNS: def,
	}, nil
}

// Next returns the next complete child of the stream element: a stanza or a
// nonza such as <starttls/>. Whitespace between elements is skipped.
//
// It returns ErrClosed once the peer closes the stream with
// </stream:stream>; io.EOF if the connection ends between elements; an
// *Error when the peer broke the rules (then the stream is dead); or a read
// error of the underlying reader, wrapped. A read error between elements (a
// read deadline passing while the peer is idle, say) leaves r usable: call
// Next again. Once r has failed otherwise, Next returns the same error.
func (r *refReader) Next() (*Element, error) {
	if r.err != nil {
		return nil, r.err
	}
	if !r.hdr {
		return nil, errors.New("xmlstream: Next before ReadHeader")
	}
	if r.closed {
		r.err = ErrClosed
		return nil, ErrClosed
	}
	if err := r.begin(r.lim.MaxStanzaBytes); err != nil {
		return nil, err
	}
	p := refParser{src: &r.src, mode: refModeStanza, lim: r.lim, ns: r.base}
	e, err := p.run()
	r.src.start(0)
	if err != nil {
		return nil, r.fail(err)
	}
	if e == nil { // an end tag at the stream's level
		if p.end != r.stream {
			return nil, r.fail(notWellFormed(fmt.Sprintf("</%s> does not close the stream", refQname(p.end))))
		}
		r.err = ErrClosed
		return nil, ErrClosed
	}
	return e, nil
}

// begin skips whitespace up to the next '<' and starts counting there, with
// limit max. Whitespace is not counted; a read error here is returned without
// making r fail, since no parse state is lost.
func (r *refReader) begin(max int) error {
	for {
		b, err := r.src.readRaw()
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("read stream: %w", err)
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '<':
			r.src.back = int(b)
			r.src.start(max)
			return nil
		case 0xEF: // a UTF-8 byte order mark may start the document
			if !r.hdr && r.readBOM() {
				continue
			}
		}
		if !r.hdr {
			return r.fail(notWellFormed("text before the stream header"))
		}
		return r.fail(notWellFormed("text directly inside the stream"))
	}
}

// readBOM reads the rest of a byte order mark after its first byte.
func (r *refReader) readBOM() bool {
	b1, err1 := r.src.readRaw()
	b2, err2 := r.src.readRaw()
	return err1 == nil && err2 == nil && b1 == 0xBB && b2 == 0xBF
}

func (r *refReader) fail(err error) error {
	r.err = err
	return err
}

// ParseFrame parses one RFC 7395 WebSocket frame: exactly one complete
// element, optionally preceded by an XML declaration and surrounded by
// whitespace. The element is depth 1 for lim.MaxDepth, and lim.MaxStanzaBytes
// bounds the frame without its surrounding whitespace. The frame must declare
// its namespaces itself: an element with no default namespace in scope has an
// empty Name.Space. Errors are as for Reader.Next.
func refParseFrame(data []byte, lim Limits) (*Element, error) {
	data = bytes.Trim(data, " \t\r\n")
	if len(data) == 0 {
		return nil, notWellFormed("empty frame")
	}
	if lim.MaxStanzaBytes > 0 && len(data) > lim.MaxStanzaBytes {
		return nil, policyViolation(fmt.Sprintf("frame of %d bytes is over the limit of %d", len(data), lim.MaxStanzaBytes))
	}
	br := bytes.NewReader(data)
	p := refParser{src: &refCountReader{r: br, back: -1}, mode: refModeFrame, lim: lim}
	e, err := p.run()
	if err != nil {
		return nil, err
	}
	if br.Len() > 0 {
		return nil, notWellFormed("data after the element in the frame")
	}
	return e, nil
}

// errTooLarge is what countReader returns past its limit.
var refErrTooLarge = errors.New("xmlstream: size limit reached")

// errCharset is what the decoders' CharsetReader returns: only UTF-8 is
// allowed (RFC 6120 §11.6).
var refErrCharset = errors.New("xmlstream: only UTF-8 is supported")

func refRefuseCharset(string, io.Reader) (io.Reader, error) { return nil, refErrCharset }

// countReader is the io.ByteReader the XML decoder reads through. It counts
// the bytes of the current element and fails once they reach max, before
// reading more from the source; it also holds one pushed-back byte and the
// last two bytes read.
type refCountReader struct {
	r          io.ByteReader
	back       int // pushed-back byte, or -1
	n, max     int // bytes read since start; limit (0 = none)
	last, prev byte
	err        error // the last error of r
}

func (c *refCountReader) start(max int) { c.n, c.max, c.err = 0, max, nil }

func (c *refCountReader) ReadByte() (byte, error) {
	if c.max > 0 && c.n >= c.max {
		return 0, refErrTooLarge
	}
	b, err := c.readRaw()
	if err != nil {
		return 0, err
	}
	c.n++
	c.prev, c.last = c.last, b
	return b, nil
}

// Read exists so that countReader is an io.Reader, which xml.NewDecoder
// takes; the decoder only calls ReadByte.
func (c *refCountReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := c.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

func (c *refCountReader) readRaw() (byte, error) {
	if c.back >= 0 {
		b := byte(c.back)
		c.back = -1
		return b, nil
	}
	b, err := c.r.ReadByte()
	if err != nil {
		c.err = err
		return 0, err
	}
	return b, nil
}

// binding is one namespace declaration in scope; prefix "" is the default
// namespace.
type refBinding struct{ prefix, uri string }

// lookup finds the innermost declaration of prefix.
func refLookup(ns []refBinding, prefix string) (string, bool) {
	for i := len(ns) - 1; i >= 0; i-- {
		if ns[i].prefix == prefix {
			return ns[i].uri, true
		}
	}
	return "", false
}

type refParseMode uint8

const (
	refModeStanza refParseMode = iota // a child of the stream element, or the stream's end tag
	refModeHeader                     // prolog, then the stream open tag
	refModeFrame                      // prolog, then one complete element
)

// frame is one open element.
type refFrame struct {
	e      *Element
	prefix string // raw prefix, to match the end tag
	mark   int    // len(ns) before the element's declarations
}

// parser builds one top-level element from the tokens of a fresh
// xml.Decoder. A decoder lives for one element only, so that its buffer (as
// large as the largest token) is not kept between elements.
type refParser struct {
	src  *refCountReader
	mode refParseMode
	lim  Limits
	ns   []refBinding
	raw  xml.Name // raw name of the last start tag
	end  xml.Name // raw name of an end tag met at depth 0 (modeStanza)

	// Pending character data of the innermost open element: adjacent
	// pieces (text, CDATA sections) become one text node.
	text    string
	textBuf []byte
	hasText bool
	merged  bool // text is in textBuf
}

func (p *refParser) run() (*Element, error) {
	d := xml.NewDecoder(p.src)
	d.CharsetReader = refRefuseCharset
	var stackBuf [8]refFrame // shallow elements need no allocation for the stack
	stack := stackBuf[:0]
	prolog := p.mode != refModeStanza
	first := true
	for ; ; first = false {
		tok, err := d.RawToken()
		if err != nil {
			return nil, p.readError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var parent *Element
			if len(stack) > 0 {
				parent = stack[len(stack)-1].e
			}
			mark := len(p.ns)
			e, err := p.start(t, len(stack)+1, parent)
			if err != nil {
				return nil, err
			}
			if p.mode == refModeHeader {
				return e, nil
			}
			stack = append(stack, refFrame{e: e, prefix: t.Name.Space, mark: mark})
			prolog = false
		case xml.EndElement:
			if len(stack) == 0 {
				if p.mode == refModeStanza {
					p.end = t.Name
					return nil, nil
				}
				return nil, notWellFormed(fmt.Sprintf("unexpected </%s>", refQname(t.Name)))
			}
			f := stack[len(stack)-1]
			if t.Name.Space != f.prefix || t.Name.Local != f.e.Name.Local {
				return nil, notWellFormed(fmt.Sprintf("<%s> closed by </%s>",
					refQname(xml.Name{Space: f.prefix, Local: f.e.Name.Local}), refQname(t.Name)))
			}
			p.flushText(f.e)
			stack[len(stack)-1] = refFrame{}
			stack = stack[:len(stack)-1]
			p.ns = p.ns[:f.mark]
			if len(stack) == 0 {
				return f.e, nil
			}
		case xml.CharData:
			if len(stack) == 0 {
				if prolog && refIsSpace(t) {
					break
				}
				if p.mode == refModeStanza {
					return nil, notWellFormed("text directly inside the stream")
				}
				return nil, notWellFormed("text outside the element")
			}
			p.addText(t)
		case xml.ProcInst:
			if prolog && first && t.Target == "xml" {
				break // the XML declaration; the decoder checked version and encoding
			}
			return nil, restrictedXML("processing instruction <?" + t.Target + "?>")
		case xml.Comment:
			return nil, restrictedXML("comment")
		case xml.Directive:
			return nil, restrictedXML("DTD or other directive <!" + refFirstWord(t) + ">")
		}
	}
}

// readError turns a decoder error into what the reader returns.
func (p *refParser) readError(err error) error {
	switch {
	case errors.Is(err, refErrTooLarge):
		if p.mode == refModeHeader {
			return policyViolation(fmt.Sprintf("stream header over %d bytes", p.src.max))
		}
		return policyViolation(fmt.Sprintf("element over %d bytes", p.src.max))
	case errors.Is(err, refErrCharset):
		if p.mode == refModeStanza {
			return restrictedXML("XML declaration inside the stream")
		}
		return &Error{Condition: "unsupported-encoding", Text: "only UTF-8 is supported"}
	case err == io.EOF:
		return notWellFormed("unexpected EOF")
	case p.src.err != nil && err == p.src.err:
		return fmt.Errorf("read stream: %w", err)
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return notWellFormed(se.Msg)
	}
	return notWellFormed(err.Error())
}

// start opens an element at depth (1 for the top-level element) and adds
// it to parent.
func (p *refParser) start(t xml.StartElement, depth int, parent *Element) (*Element, error) {
	if p.mode != refModeHeader && p.lim.MaxDepth > 0 && depth > p.lim.MaxDepth {
		return nil, policyViolation(fmt.Sprintf("elements nested deeper than %d", p.lim.MaxDepth))
	}
	mark := len(p.ns)
	n := 0
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns":
			if err := p.declare(a.Name.Local, a.Value, mark); err != nil {
				return nil, err
			}
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			if err := p.declare("", a.Value, mark); err != nil {
				return nil, err
			}
		default:
			n++
		}
	}
	if p.mode != refModeHeader && p.lim.MaxAttrs > 0 && n > p.lim.MaxAttrs {
		return nil, policyViolation(fmt.Sprintf("more than %d attributes on <%s>", p.lim.MaxAttrs, refQname(t.Name)))
	}
	if err := refCheckLocal(t.Name); err != nil {
		return nil, err
	}
	space, ok := p.resolve(t.Name, true)
	if !ok {
		if p.mode == refModeHeader && t.Name.Space != "xmlns" {
			return nil, &Error{Condition: "bad-namespace-prefix", Text: "undeclared prefix " + t.Name.Space}
		}
		return nil, notWellFormed(fmt.Sprintf("undeclared prefix in <%s>", refQname(t.Name)))
	}
	if space == NSXML {
		return nil, notWellFormed(fmt.Sprintf("element <%s> in the xml namespace", refQname(t.Name)))
	}
	// Resolve the attributes in place, dropping the declarations.
	attrs := t.Attr[:0]
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		if err := refCheckLocal(a.Name); err != nil {
			return nil, err
		}
		s, ok := p.resolve(a.Name, false)
		if !ok {
			return nil, notWellFormed(fmt.Sprintf("undeclared prefix in attribute %s", refQname(a.Name)))
		}
		attrs = append(attrs, xml.Attr{Name: xml.Name{Space: s, Local: a.Name.Local}, Value: a.Value})
	}
	clear(t.Attr[len(attrs):])
	if len(attrs) == 0 {
		attrs = nil
	} else if refDupAttr(attrs) {
		return nil, notWellFormed(fmt.Sprintf("duplicate attribute on <%s>", refQname(t.Name)))
	}
	e := &Element{Name: xml.Name{Space: space, Local: t.Name.Local}, Attr: attrs}
	p.raw = t.Name
	if p.mode == refModeHeader {
		return e, nil
	}
	if parent != nil {
		p.flushText(parent)
		if parent.Nodes == nil && depth == 2 {
			parent.Nodes = make([]Node, 0, 4) // stanzas often have a few children
		}
		parent.Nodes = append(parent.Nodes, Node{Elem: e})
	}
	return e, nil
}

// declare adds a namespace declaration of the element whose declarations
// start at p.ns[mark].
func (p *refParser) declare(prefix, uri string, mark int) error {
	switch {
	case prefix == "xmlns":
		return notWellFormed("the xmlns prefix cannot be declared")
	case prefix == "xml":
		if uri != NSXML {
			return notWellFormed("the xml prefix cannot be rebound")
		}
		return nil // always in scope
	case uri == NSXML || uri == nsXMLNS:
		return notWellFormed("reserved namespace " + uri + " bound to another prefix")
	case prefix != "" && uri == "":
		return notWellFormed("empty namespace for prefix " + prefix)
	case uri == "xml":
		// Element attributes in namespace "xml" would be written back with
		// the xml: prefix (see AppendXML); refuse the ambiguous name.
		return notWellFormed(`namespace name "xml" is not supported`)
	}
	if len(p.ns)-mark >= maxDecls {
		return policyViolation(fmt.Sprintf("more than %d namespace declarations on one element", maxDecls))
	}
	for _, b := range p.ns[mark:] {
		if b.prefix == prefix {
			return notWellFormed("duplicate namespace declaration")
		}
	}
	p.ns = append(p.ns, refBinding{prefix, uri})
	return nil
}

// resolve returns the namespace of a raw name; false if its prefix is not
// declared. Unprefixed attributes have no namespace.
func (p *refParser) resolve(n xml.Name, elem bool) (string, bool) {
	switch n.Space {
	case "":
		if !elem {
			return "", true
		}
		uri, _ := refLookup(p.ns, "")
		return uri, true
	case "xml":
		return NSXML, true
	case "xmlns":
		return "", false
	}
	return refLookup(p.ns, n.Space)
}

func (p *refParser) addText(data []byte) {
	switch {
	case len(data) == 0:
	case !p.hasText:
		p.text, p.hasText = string(data), true
	case !p.merged:
		p.textBuf = append(append(p.textBuf[:0], p.text...), data...)
		p.merged = true
	default:
		p.textBuf = append(p.textBuf, data...)
	}
}

// flushText adds the pending text to e.
func (p *refParser) flushText(e *Element) {
	if !p.hasText {
		return
	}
	s := p.text
	if p.merged {
		s = string(p.textBuf)
	}
	e.Nodes = append(e.Nodes, Node{Text: s})
	p.text, p.hasText, p.merged = "", false, false
}

// checkLocal refuses names that are not namespace-well-formed: a local part
// with a colon ("a:" and ":a" come out of the decoder that way) or, after a
// prefix, one that does not start like an XML name.
func refCheckLocal(n xml.Name) error {
	if strings.IndexByte(n.Local, ':') >= 0 {
		return notWellFormed("invalid qualified name " + refQname(n))
	}
	if n.Space != "" && !refIsNameStart(n.Local) {
		return notWellFormed("invalid local name " + refQname(n))
	}
	return nil
}

// isNameStart reports whether s starts with a character that may start an
// XML name. The decoder checked that the whole prefixed name is a name, so
// only the start of its local part is left to check.
func refIsNameStart(s string) bool {
	c := s[0]
	if c < utf8.RuneSelf {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
	}
	// Rare: ask encoding/xml, whose name tables are not exported.
	_, size := utf8.DecodeRuneInString(s)
	_, err := xml.NewDecoder(strings.NewReader("<" + s[:size] + "/>")).RawToken()
	return err == nil
}

// dupAttr reports whether two attributes have the same name.
func refDupAttr(attrs []xml.Attr) bool {
	if len(attrs) <= 16 {
		for i := 1; i < len(attrs); i++ {
			for j := range i {
				if attrs[i].Name == attrs[j].Name {
					return true
				}
			}
		}
		return false
	}
	seen := make(map[xml.Name]struct{}, len(attrs))
	for _, a := range attrs {
		if _, ok := seen[a.Name]; ok {
			return true
		}
		seen[a.Name] = struct{}{}
	}
	return false
}

func refIsSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// qname formats a raw name as written.
func refQname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// firstWord returns the keyword of a directive, such as DOCTYPE.
func refFirstWord(d []byte) string {
	i := bytes.IndexAny(d, " \t\r\n[")
	if i < 0 {
		i = len(d)
	}
	return strings.ToValidUTF8(string(d[:min(i, 16)]), "?")
}
