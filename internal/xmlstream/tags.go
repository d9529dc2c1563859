package xmlstream

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// startTag reads a start tag from its name on. done is true in modeHeader,
// and when the tag closes a self-closing top-level element.
func (p *parser) startTag() (done bool, err error) {
	name, err := p.qname("expected element name after <")
	if err != nil {
		return false, err
	}
	p.tag = p.tag[:0]
	for {
		sp, err := p.space()
		if err != nil {
			return false, err
		}
		c, err := p.next()
		if err != nil {
			return false, err
		}
		switch c {
		case '/':
			if c, err = p.next(); err != nil {
				return false, err
			}
			if c != '>' {
				return false, notWellFormed("expected /> in element")
			}
			return p.open(name, true)
		case '>':
			return p.open(name, false)
		}
		p.pos--
		if !sp {
			// encoding/xml let this through; XML 1.0 requires white space.
			return false, notWellFormed("no white space before an attribute")
		}
		a, err := p.attribute()
		if err != nil {
			return false, err
		}
		p.tag = append(p.tag, a)
	}
}

// attribute reads name='value'.
func (p *parser) attribute() (rawAttr, error) {
	name, err := p.qname("expected attribute name in element")
	if err != nil {
		return rawAttr{}, err
	}
	c, err := p.afterSpace()
	if err != nil {
		return rawAttr{}, err
	}
	if c != '=' {
		return rawAttr{}, notWellFormed("attribute name without = in element")
	}
	if c, err = p.afterSpace(); err != nil {
		return rawAttr{}, err
	}
	if c != '"' && c != '\'' {
		return rawAttr{}, notWellFormed("unquoted or missing attribute value in element")
	}
	start := p.pos
	end, err := p.chars(start, inAttr, c)
	if err != nil {
		return rawAttr{}, err
	}
	return rawAttr{name: name, value: span{int32(start), int32(end)}}, nil
}

// afterSpace skips white space and reads the byte after it.
func (p *parser) afterSpace() (byte, error) {
	if _, err := p.space(); err != nil {
		return 0, err
	}
	return p.next()
}

func (p *parser) is(s span, name string) bool { return string(p.bytes(s)) == name }

func isDecl(a rawAttr) bool { return a.name.kind == qXMLNS || a.name.kind == qXMLNSPrefix }

// open checks the start tag just read, as the encoding/xml based reader did
// and in the same order, and records its element.
func (p *parser) open(name qname, selfClosing bool) (done bool, err error) {
	header := p.mode == modeHeader
	if !header && p.lim.MaxDepth > 0 && len(p.stack)+1 > p.lim.MaxDepth {
		return false, policyViolation(fmt.Sprintf("elements nested deeper than %d", p.lim.MaxDepth))
	}
	mark := len(p.ns)
	n := 0
	for _, a := range p.tag {
		switch a.name.kind {
		case qXMLNSPrefix:
			err = p.declare(a.name.local, a.value, mark)
		case qXMLNS:
			err = p.declare(a.name.prefix, a.value, mark) // the empty prefix
		default:
			n++
		}
		if err != nil {
			return false, err
		}
	}
	if !header && p.lim.MaxAttrs > 0 && n > p.lim.MaxAttrs {
		return false, policyViolation(fmt.Sprintf("more than %d attributes on <%s>", p.lim.MaxAttrs, p.qstr(name)))
	}
	if err := p.checkLocal(name); err != nil {
		return false, err
	}
	space, ok := p.resolve(name, true)
	if !ok {
		if header && name.kind != qXMLNSPrefix {
			return false, &Error{Condition: "bad-namespace-prefix", Text: "undeclared prefix " + string(p.bytes(name.prefix))}
		}
		return false, notWellFormed(fmt.Sprintf("undeclared prefix in <%s>", p.qstr(name)))
	}
	if space.off == nsXML {
		return false, notWellFormed(fmt.Sprintf("element <%s> in the xml namespace", p.qstr(name)))
	}
	a0 := len(p.attrs)
	for _, a := range p.tag {
		if isDecl(a) {
			continue
		}
		if err := p.checkLocal(a.name); err != nil {
			return false, err
		}
		s, ok := p.resolve(a.name, false)
		if !ok {
			return false, notWellFormed(fmt.Sprintf("undeclared prefix in attribute %s", p.qstr(a.name)))
		}
		p.attrs = append(p.attrs, attrRec{space: s, local: a.name.local, value: a.value})
	}
	if p.dupAttr(p.attrs[a0:]) {
		return false, notWellFormed(fmt.Sprintf("duplicate attribute on <%s>", p.qstr(name)))
	}

	i := int32(len(p.elems))
	parent := int32(-1)
	if len(p.stack) > 0 {
		parent = p.stack[len(p.stack)-1]
		p.flushText(parent)
		p.nodes = append(p.nodes, nodeRec{parent: parent, elem: i})
		p.elems[parent].nodes++
	}
	p.elems = append(p.elems, elemRec{space: space, name: name, parent: parent,
		attr0: int32(a0), attr1: int32(len(p.attrs)), mark: int32(mark)})
	if header {
		p.selfClosing = selfClosing
		return true, nil
	}
	p.stack = append(p.stack, i)
	if selfClosing {
		return p.pop(), nil
	}
	return false, nil
}

// declare adds a namespace declaration of the element whose declarations
// start at p.ns[mark].
func (p *parser) declare(prefix, uri span, mark int) error {
	pre, u := p.bytes(prefix), p.bytes(uri)
	switch {
	case string(pre) == "xmlns":
		return notWellFormed("the xmlns prefix cannot be declared")
	case string(pre) == "xml":
		if string(u) != NSXML {
			return notWellFormed("the xml prefix cannot be rebound")
		}
		return nil // always in scope
	case string(u) == NSXML || string(u) == nsXMLNS:
		return notWellFormed("reserved namespace " + string(u) + " bound to another prefix")
	case len(pre) > 0 && len(u) == 0:
		return notWellFormed("empty namespace for prefix " + string(pre))
	case string(u) == "xml":
		// Attributes in namespace "xml" would be written back with the xml:
		// prefix (see AppendXML); refuse the ambiguous name.
		return notWellFormed(`namespace name "xml" is not supported`)
	}
	if len(p.ns)-mark >= maxDecls {
		return policyViolation(fmt.Sprintf("more than %d namespace declarations on one element", maxDecls))
	}
	for _, d := range p.ns[mark:] {
		if bytes.Equal(p.bytes(d.prefix), pre) {
			return notWellFormed("duplicate namespace declaration")
		}
	}
	p.ns = append(p.ns, decl{prefix: prefix, uri: uri})
	return nil
}

// resolve returns the namespace of a name; false if its prefix is not
// declared. Unprefixed attributes have no namespace.
func (p *parser) resolve(q qname, elem bool) (span, bool) {
	switch {
	case q.prefix.off == q.prefix.end && !elem:
		return span{off: nsNone}, true
	case q.kind == qXMLPrefix:
		return span{off: nsXML}, true
	case q.kind == qXMLNSPrefix:
		return span{}, false
	}
	return p.lookup(p.bytes(q.prefix))
}

// lookup finds the innermost declaration of prefix; the default namespace
// (empty prefix) is none if not declared.
func (p *parser) lookup(prefix []byte) (span, bool) {
	for i := len(p.ns) - 1; i >= 0; i-- {
		if bytes.Equal(p.bytes(p.ns[i].prefix), prefix) {
			return p.ns[i].uri, true
		}
	}
	for i := len(p.base) - 1; i >= 0; i-- {
		if p.base[i].prefix == string(prefix) {
			return span{off: nsBase - int32(i)}, true
		}
	}
	return span{off: nsNone}, len(prefix) == 0
}

// nsText returns a namespace that is not a span of raw.
func (p *parser) nsText(s span) string {
	switch s.off {
	case nsNone:
		return ""
	case nsXML:
		return NSXML
	}
	return p.base[nsBase-s.off].uri
}

// sameNS reports whether two resolved namespaces are equal.
func (p *parser) sameNS(a, b span) bool {
	switch {
	case a.off >= 0 && b.off >= 0:
		return bytes.Equal(p.bytes(a), p.bytes(b))
	case a.off >= 0:
		return string(p.bytes(a)) == p.nsText(b)
	case b.off >= 0:
		return string(p.bytes(b)) == p.nsText(a)
	}
	return p.nsText(a) == p.nsText(b)
}

// checkLocal refuses names that are not namespace-well-formed: a local part
// with a colon ("a:" and ":a" are read that way), or one that does not start
// like a name after a prefix.
func (p *parser) checkLocal(q qname) error {
	if q.kind == qColonLocal {
		return notWellFormed("invalid qualified name " + p.qstr(q))
	}
	if q.prefix.end > q.prefix.off && !startsNCName(p.bytes(q.local)) {
		return notWellFormed("invalid local name " + p.qstr(q))
	}
	return nil
}

// dupAttr reports whether two attributes have the same name.
func (p *parser) dupAttr(attrs []attrRec) bool {
	if len(attrs) <= 16 {
		for i := 1; i < len(attrs); i++ {
			a := &attrs[i]
			n := a.local.end - a.local.off
			for j := range i {
				b := &attrs[j]
				if b.local.end-b.local.off == n && p.raw[a.local.off] == p.raw[b.local.off] &&
					bytes.Equal(p.bytes(a.local), p.bytes(b.local)) && p.sameNS(a.space, b.space) {
					return true
				}
			}
		}
		return false
	}
	seen := make(map[xml.Name]struct{}, len(attrs))
	for _, a := range attrs {
		n := xml.Name{Local: string(p.bytes(a.local))}
		if a.space.off >= 0 {
			n.Space = string(p.bytes(a.space))
		} else {
			n.Space = p.nsText(a.space)
		}
		if _, ok := seen[n]; ok {
			return true
		}
		seen[n] = struct{}{}
	}
	return false
}

// bang reads what follows "<!": a comment, a CDATA section or a directive.
func (p *parser) bang(prolog bool) error {
	c, err := p.next()
	if err != nil {
		return err
	}
	switch c {
	case '-':
		if c, err = p.next(); err != nil {
			return err
		}
		if c != '-' {
			return notWellFormed("invalid sequence <!- not part of <!--")
		}
		for b0, b1 := byte(0), byte(0); ; b0, b1 = b1, c {
			if c, err = p.next(); err != nil {
				return err
			}
			if b0 == '-' && b1 == '-' {
				if c != '>' {
					return notWellFormed(`"--" in a comment`)
				}
				return restrictedXML("comment")
			}
		}
	case '[':
		for i := range 6 {
			if c, err = p.next(); err != nil {
				return err
			}
			if c != "CDATA["[i] {
				return notWellFormed("invalid <![ sequence")
			}
		}
		return p.cdata(prolog)
	}
	return p.directive()
}

// directive reads a DTD or another directive after "<!" up to its end, as
// encoding/xml did (quoted text, nested angle brackets and comments), and
// refuses it.
func (p *parser) directive() error {
	start := p.pos - 1
	var quote byte
	depth := 0
	for {
		c, err := p.next()
		if err != nil {
			return err
		}
		if quote == 0 && c == '>' && depth == 0 {
			break
		}
	handle:
		switch {
		case c == quote:
			quote = 0
		case quote != 0:
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			depth--
		case c == '<':
			for i := range 3 {
				if c, err = p.next(); err != nil {
					return err
				}
				if c != "!--"[i] {
					depth++
					goto handle
				}
			}
			for b0, b1 := byte(0), byte(0); ; b0, b1 = b1, c {
				if c, err = p.next(); err != nil {
					return err
				}
				if b0 == '-' && b1 == '-' && c == '>' {
					break
				}
			}
		}
	}
	return restrictedXML("DTD or other directive <!" + firstWord(p.raw[start:]) + ">")
}

// cdata reads a CDATA section after "<![CDATA[".
func (p *parser) cdata(prolog bool) error {
	if len(p.stack) == 0 {
		start := p.pos
		w, err := p.chars(start, inCDATA, 0)
		if err != nil {
			return err
		}
		if !prolog || !isSpace(p.raw[start:w]) {
			return p.outside()
		}
		return nil
	}
	if !p.hasText {
		p.text = span{int32(p.pos), int32(p.pos)}
		p.hasText = true
	}
	w, err := p.chars(int(p.text.end), inCDATA, 0)
	p.text.end = int32(w)
	return err
}

// tree builds the Elements of the complete top-level element. All their
// strings are slices of one copy of raw.
func (p *parser) tree() *Element {
	s := string(p.raw[:p.pos])
	str := func(sp span) string {
		if sp.off < 0 {
			return p.nsText(sp)
		}
		return s[sp.off:sp.end]
	}
	elems := make([]Element, len(p.elems))
	// The top-level element's attributes come first, and one free slot
	// after them: the server stamps 'from' on nearly every stanza a client
	// sends, and appending it would otherwise copy the whole slice.
	// An element without attributes keeps a nil Attr.
	top := int(p.elems[0].attr1) // p.elems[0].attr0 is 0
	spare := 0
	if top > 0 {
		spare = 1
	}
	var attrs []xml.Attr
	if len(p.attrs) > 0 {
		attrs = make([]xml.Attr, len(p.attrs)+spare)
		for i, a := range p.attrs {
			if i >= top {
				i += spare
			}
			attrs[i] = xml.Attr{Name: xml.Name{Space: str(a.space), Local: str(a.local)}, Value: str(a.value)}
		}
	}
	var nodes []Node
	if len(p.nodes) > 0 {
		nodes = make([]Node, len(p.nodes))
	}
	off := 0
	for i := range p.elems {
		r, e := &p.elems[i], &elems[i]
		e.Name = xml.Name{Space: str(r.space), Local: str(r.name.local)}
		// Full slice expressions: appending to one element's slice must
		// not write over the next one's.
		switch {
		case i == 0 && top > 0:
			e.Attr = attrs[0 : top : top+1]
		case r.attr1 > r.attr0:
			e.Attr = attrs[int(r.attr0)+spare : int(r.attr1)+spare : int(r.attr1)+spare]
		}
		if r.nodes > 0 {
			e.Nodes = nodes[off : off : off+int(r.nodes)]
			off += int(r.nodes)
		}
	}
	for _, n := range p.nodes {
		e := &elems[n.parent]
		if n.elem >= 0 {
			e.Nodes = append(e.Nodes, Node{Elem: &elems[n.elem]})
		} else {
			e.Nodes = append(e.Nodes, Node{Text: s[n.text.off:n.text.end]})
		}
	}
	return &elems[0]
}
