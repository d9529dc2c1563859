// Package xmlstream reads and writes the XML of XMPP streams: the stream
// header and the stream's top-level elements (RFC 6120 §4), with the
// restrictions of RFC 6120 §11 (no DTD, comments, processing instructions or
// entity declarations; UTF-8 only), and the one-element frames of XMPP over
// WebSocket (RFC 7395 §3.3).
//
// The reader has its own tokenizer for that restricted XML: XML 1.0 (fifth
// edition) with namespaces, UTF-8 only, the five predefined entities and
// character references, CDATA sections (read as text) and an optional XML
// declaration.
//
// The reader enforces limits while it reads: the bytes of one top-level
// element, the nesting depth and the number of attributes. A peer that goes
// over the size limit is cut off once the limit has been read, before more is
// buffered. Between elements a Reader holds no parse buffers, so an idle
// connection costs only the Reader itself and the caller's buffered reader.
package xmlstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Limits bound what a peer can make a reader hold. Zero means no limit.
// Whatever the limits, a stream header may have at most 8 KiB and an element
// at most 64 namespace declarations.
type Limits struct {
	MaxStanzaBytes int // bytes of one top-level element including its children
	MaxDepth       int // element nesting depth below the stream element (the stanza itself is depth 1)
	MaxAttrs       int // attributes (excluding xmlns declarations) on one element
}

// Header is the stream open tag, <stream:stream>.
type Header struct {
	To, From, ID, Version, Lang string
	DefaultNS                   string // the default namespace declared on it (jabber:client or jabber:server)
}

const (
	// maxHeaderBytes bounds the XML declaration and stream open tag together.
	maxHeaderBytes = 8 << 10
	// readBufSize is the buffer NewReader puts under an io.Reader that has no
	// ReadByte method. Callers that care pass their own *bufio.Reader.
	readBufSize = 512

	// maxDecls bounds the namespace declarations on one element, which
	// Limits.MaxAttrs does not count: no protocol needs many, and each costs
	// a scan of the others.
	maxDecls = 64

	nsXMLNS = "http://www.w3.org/2000/xmlns/"
)

// Reader reads one XML stream: ReadHeader, then Next until it fails. It is not
// safe for concurrent use.
type Reader struct {
	src    source
	lim    Limits
	base   []binding // namespace declarations on the stream open tag
	prefix string    // the stream open tag's name as written
	local  string
	hdr    bool  // header read
	closed bool  // the stream open tag was self-closing
	err    error // sticky failure
}

// binding is one namespace declaration of the stream header; prefix "" is
// the default namespace.
type binding struct{ prefix, uri string }

// NewReader returns a reader of the stream in r. If r is an io.ByteReader (a
// *bufio.Reader, say) it is read directly and never past the end of the
// element returned; otherwise a small buffer is put under it.
func NewReader(r io.Reader, lim Limits) *Reader {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = bufio.NewReaderSize(r, readBufSize)
	}
	buf, _ := br.(*bufio.Reader)
	return &Reader{src: source{br: br, buf: buf, back: -1}, lim: lim}
}

// SetBuffer makes r read from br from the next element on, for a caller
// that lends its buffer out while the stream is idle. Call it only between
// elements, when the buffered reader r read from so far holds nothing more
// of the stream: br then holds what follows.
func (r *Reader) SetBuffer(br *bufio.Reader) {
	r.src.br, r.src.buf = br, br
}

// SetLimits changes the limits from the next element on, for example to raise
// the stanza size limit after authentication.
func (r *Reader) SetLimits(lim Limits) { r.lim = lim }

// Limits returns the limits r reads with.
func (r *Reader) Limits() Limits { return r.lim }

// Reset prepares r for a stream restart (RFC 6120 §4.3.3), as after SASL
// success: it forgets the header and any failure, but keeps the bytes already
// buffered in the underlying reader. Call ReadHeader next. After STARTTLS,
// make a new Reader on the TLS connection instead.
func (r *Reader) Reset() {
	r.base = nil
	r.prefix, r.local = "", ""
	r.hdr = false
	r.closed = false
	r.err = nil
}

// ReadHeader reads the optional XML declaration and the stream open tag.
// A wrong element or namespace is an *Error with condition
// "invalid-namespace" (or "bad-namespace-prefix" if the stream prefix is not
// declared); a non-UTF-8 encoding declaration is "unsupported-encoding".
// Other errors are as for Next.
func (r *Reader) ReadHeader() (Header, error) {
	if r.err != nil {
		return Header{}, r.err
	}
	if r.hdr {
		return Header{}, errors.New("xmlstream: header already read")
	}
	if err := r.begin(); err != nil {
		return Header{}, err
	}
	p := getParser(&r.src, modeHeader, Limits{}, maxHeaderBytes)
	defer putParser(p)
	err := p.run()
	r.src.consumed(p)
	if err != nil {
		return Header{}, r.fail(p.ioError(err))
	}
	e := &p.elems[0]
	if space := p.nsString(e.space); space != NSStream || !p.is(e.name.local, "stream") {
		return Header{}, r.fail(&Error{Condition: "invalid-namespace",
			Text: fmt.Sprintf("expected <stream> in %s, got <%s> in %q", NSStream, p.bytes(e.name.local), space)})
	}
	def, _ := p.lookup(nil)
	if s := p.nsString(def); s != NSClient && s != NSServer {
		return Header{}, r.fail(&Error{Condition: "invalid-namespace",
			Text: fmt.Sprintf("unsupported content namespace %q", s)})
	}
	r.base = p.headerBindings()
	r.prefix, r.local = intern(p.bytes(e.name.prefix)), intern(p.bytes(e.name.local))
	r.hdr = true
	r.closed = p.selfClosing
	var h Header
	for _, a := range p.attrs[e.attr0:e.attr1] {
		var f *string
		switch {
		case a.space.off == nsXML && p.is(a.local, "lang"):
			f = &h.Lang
		case a.space.off != nsNone:
		case p.is(a.local, "to"):
			f = &h.To
		case p.is(a.local, "from"):
			f = &h.From
		case p.is(a.local, "id"):
			f = &h.ID
		case p.is(a.local, "version"):
			f = &h.Version
		}
		if f != nil {
			*f = string(p.bytes(a.value))
		}
	}
	h.DefaultNS = p.nsString(def)
	return h, nil
}

// commonBindings are the declarations of nearly every stream header, in
// the orders clients write them. A Reader whose header has one of them
// shares it instead of keeping a copy: every connection keeps its header's
// declarations for as long as it is open. They are never written to.
var commonBindings = [...][]binding{
	{{"", NSClient}, {"stream", NSStream}},
	{{"stream", NSStream}, {"", NSClient}},
	{{"", NSServer}, {"stream", NSStream}},
	{{"stream", NSStream}, {"", NSServer}},
}

// headerBindings returns the namespace declarations of the stream header p
// parsed.
func (p *parser) headerBindings() []binding {
	if len(p.ns) == 2 {
	common:
		for _, c := range commonBindings {
			for i, d := range p.ns {
				if !p.is(d.prefix, c[i].prefix) || !p.is(d.uri, c[i].uri) {
					continue common
				}
			}
			return c
		}
	}
	base := make([]binding, 0, len(p.ns))
	for _, d := range p.ns {
		base = append(base, binding{prefix: intern(p.bytes(d.prefix)), uri: intern(p.bytes(d.uri))})
	}
	return base
}

// nsString returns a resolved namespace as a new string.
func (p *parser) nsString(s span) string {
	if s.off < 0 {
		return p.nsText(s)
	}
	return intern(p.bytes(s))
}

// intern returns b as a string, without allocating for the names and
// namespaces that every stream header has.
func intern(b []byte) string {
	for _, s := range [...]string{"", NSClient, NSServer, NSStream, "stream", "jabber:server:dialback", "db"} {
		if string(b) == s {
			return s
		}
	}
	return string(b)
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
func (r *Reader) Next() (*Element, error) {
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
	if err := r.begin(); err != nil {
		return nil, err
	}
	p := getParser(&r.src, modeStanza, r.lim, r.lim.MaxStanzaBytes)
	defer putParser(p)
	p.base = r.base
	err := p.run()
	r.src.consumed(p)
	switch {
	case err != nil:
		return nil, r.fail(p.ioError(err))
	case p.closing: // an end tag at the stream's level
		if !p.is(p.end.prefix, r.prefix) || !p.is(p.end.local, r.local) {
			return nil, r.fail(notWellFormed(fmt.Sprintf("</%s> does not close the stream", p.qstr(p.end))))
		}
		r.err = ErrClosed
		return nil, ErrClosed
	}
	return p.tree(), nil
}

// begin skips whitespace up to the next '<' and leaves it to the parser.
// Whitespace is not counted against the limits; a read error here is
// returned without making r fail, since no parse state is lost.
func (r *Reader) begin() error {
	for {
		b, err := r.src.br.ReadByte()
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
func (r *Reader) readBOM() bool {
	b1, err1 := r.src.br.ReadByte()
	b2, err2 := r.src.br.ReadByte()
	return err1 == nil && err2 == nil && b1 == 0xBB && b2 == 0xBF
}

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// ParseFrame parses one RFC 7395 WebSocket frame: exactly one complete
// element, optionally preceded by an XML declaration and surrounded by
// whitespace. The element is depth 1 for lim.MaxDepth, and lim.MaxStanzaBytes
// bounds the frame without its surrounding whitespace. The frame must declare
// its namespaces itself: an element with no default namespace in scope has an
// empty Name.Space. Errors are as for Reader.Next.
func ParseFrame(data []byte, lim Limits) (*Element, error) {
	data = bytes.Trim(data, " \t\r\n")
	if len(data) == 0 {
		return nil, notWellFormed("empty frame")
	}
	if lim.MaxStanzaBytes > 0 && len(data) > lim.MaxStanzaBytes || len(data) > maxElemBytes {
		return nil, policyViolation(fmt.Sprintf("frame of %d bytes is over the limit of %d", len(data), lim.MaxStanzaBytes))
	}
	p := getParser(nil, modeFrame, lim, 0)
	defer putParser(p)
	p.raw = append(p.raw, data...) // decoded in place: not the caller's bytes
	if err := p.run(); err != nil {
		return nil, p.ioError(err)
	}
	if p.pos < len(p.raw) {
		return nil, notWellFormed("data after the element in the frame")
	}
	return p.tree(), nil
}

// ioError turns what the parser returned into what the reader returns.
func (p *parser) ioError(err error) error {
	switch {
	case err == errTooLarge:
		if p.mode == modeHeader {
			return policyViolation(fmt.Sprintf("stream header over %d bytes", p.max))
		}
		return policyViolation(fmt.Sprintf("element over %d bytes", p.max))
	case err == io.EOF:
		return notWellFormed("unexpected EOF")
	}
	if _, ok := err.(*Error); ok {
		return err
	}
	return fmt.Errorf("read stream: %w", err)
}

// source is what a Reader reads from. A *bufio.Reader is read through Peek
// and Discard, a window at a time, discarding only what the parser used;
// another io.ByteReader is read a byte at a time, up to each '>' (an element
// ends with one, so that never reads past it).
type source struct {
	br   io.ByteReader
	buf  *bufio.Reader // br, if it is one
	back int           // a '<' that begin read, or -1
	win  int           // bytes of buf copied to the parser and not discarded
}

// read appends at most limit bytes (no limit if limit <= 0) to p.raw and
// returns how many; with an error if it stopped short.
func (s *source) read(p *parser, limit int) (int, error) {
	if s.back >= 0 {
		p.raw = append(p.raw, byte(s.back))
		s.back = -1
		return 1, nil
	}
	if s.buf != nil {
		if s.win > 0 {
			_, _ = s.buf.Discard(s.win) // already buffered: cannot fail
			s.win = 0
		}
		if _, err := s.buf.Peek(1); err != nil {
			return 0, err
		}
		// Start small, so that a short stanza does not copy all that is
		// buffered after it, then double.
		n := min(s.buf.Buffered(), max(512, len(p.raw)))
		if limit > 0 {
			n = min(n, limit)
		}
		w, _ := s.buf.Peek(n)
		p.raw = append(p.raw, w...)
		s.win = n
		return n, nil
	}
	raw := p.raw
	n := 0
	var err error
	for {
		var c byte
		if c, err = s.br.ReadByte(); err != nil {
			break
		}
		raw = append(raw, c)
		n++
		if c == '>' || n == limit {
			break
		}
	}
	p.raw = raw
	return n, err
}

// consumed discards from the buffer what the parser read of it.
func (s *source) consumed(p *parser) {
	if s.win > 0 {
		if n := s.win - (len(p.raw) - p.pos); n > 0 {
			_, _ = s.buf.Discard(n)
		}
		s.win = 0
	}
}

// parsers keeps parsers and their buffers between elements, so that they
// are not allocated for each element and idle Readers do not hold them.
var parsers = sync.Pool{New: func() any { return new(parser) }}

// maxPooled bounds the buffers kept in parsers.
const maxPooled = 16 << 10

func getParser(src *source, mode parseMode, lim Limits, max int) *parser {
	p := parsers.Get().(*parser)
	p.reset()
	p.src, p.mode, p.lim, p.max = src, mode, lim, max
	return p
}

func putParser(p *parser) {
	p.src, p.base = nil, nil
	if cap(p.raw) > maxPooled {
		p.raw = nil
	}
	if cap(p.nodes) > maxPooled/16 || cap(p.elems) > maxPooled/16 || cap(p.attrs) > maxPooled/16 {
		p.elems, p.attrs, p.nodes, p.stack, p.tag, p.ns = nil, nil, nil, nil, nil, nil
	}
	parsers.Put(p)
}
