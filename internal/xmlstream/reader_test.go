package xmlstream

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const clientHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
	"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>"

// readStream reads the header and then elements until an error.
func readStream(t *testing.T, in string, lim Limits) ([]*Element, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), lim)
	if _, err := r.ReadHeader(); err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	var out []*Element
	for {
		e, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

// encodeAll encodes elements as they would be written in a client stream.
func encodeAll(es []*Element) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(AppendXML(nil, e, NSClient)))
	}
	return out
}

// manyAttrs returns n attributes a0='0' a1='1'…, each with a leading space.
func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " a%d='%d'", i, i)
	}
	return b.String()
}

// manyDecls returns n namespace declarations xmlns:p0='urn:0'…
func manyDecls(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " xmlns:p%d='urn:%d'", i, i)
	}
	return b.String()
}

func condition(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Condition
	}
	return ""
}

func TestNext(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"message", "<message to='romeo@example.net' type='chat'><body>hi</body></message>",
			[]string{"<message to='romeo@example.net' type='chat'><body>hi</body></message>"}},
		{"explicit client namespace", "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
			[]string{"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"}},
		{"prefixed elements", "<x:foo xmlns:x='urn:x'><x:bar/><baz/></x:foo>",
			[]string{"<foo xmlns='urn:x'><bar/><baz xmlns='jabber:client'/></foo>"}},
		{"stream prefix from the header", "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
			[]string{"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"}},
		{"other stream prefix", "<a xmlns:s='http://etherx.jabber.org/streams'><s:error/></a>",
			[]string{"<a><stream:error/></a>"}},
		{"xml:lang", "<message xml:lang='de'><body>hallo</body></message>",
			[]string{"<message xml:lang='de'><body>hallo</body></message>"}},
		{"prefixed attribute", "<a xmlns:p='urn:p' p:x='1' y='2'/>",
			[]string{"<a xmlns:a0='urn:p' a0:x='1' y='2'/>"}},
		{"text pieces merged", "<body>a<![CDATA[<b>]]>c&amp;&#x41;&#66;</body>",
			[]string{"<body>a&lt;b&gt;c&amp;AB</body>"}},
		{"mixed content", "<p>one<b>two</b>three</p>", []string{"<p>one<b>two</b>three</p>"}},
		{"line ends normalized", "<body>a\r\nb\rc</body>", []string{"<body>a\nb\nc</body>"}},
		{"attribute escapes", `<a v="it's &lt;&quot;x&quot;&gt;&#9;"/>`,
			[]string{"<a v='it&apos;s &lt;&quot;x&quot;&gt;&#x9;'/>"}},
		{"whitespace keepalives", " \n\t<a/>\r\n \n<b/> ", []string{"<a/>", "<b/>"}},
		{"empty and self-closed are equal", "<a></a><a/>", []string{"<a/>", "<a/>"}},
		{"default namespace undeclared", "<a xmlns=''><b/></a>", []string{"<a xmlns=''><b/></a>"}},
		{"declaration shadowed", "<a xmlns:p='urn:1'><p:b xmlns:p='urn:2'/><p:c/></a>",
			[]string{"<a><b xmlns='urn:2'/><c xmlns='urn:1'/></a>"}},
		{"declared xml prefix", "<a xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:space='preserve'/>",
			[]string{"<a xml:space='preserve'/>"}},
		{"non-ASCII", "<body>Grüße 🌍</body>", []string{"<body>Grüße 🌍</body>"}},
		{"non-ASCII local name after prefix", "<p:é xmlns:p='urn:p'/>", []string{"<é xmlns='urn:p'/>"}},
		{"many attributes", "<a" + manyAttrs(20) + "/>", []string{"<a" + manyAttrs(20) + "/>"}},
		{"64 namespace declarations", "<a" + manyDecls(64) + "><p63:b/></a>", []string{"<a><b xmlns='urn:63'/></a>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := readStream(t, clientHeader+tt.in, Limits{})
			if err != io.EOF {
				t.Fatalf("final error = %v, want io.EOF", err)
			}
			if got, want := encodeAll(es), tt.want; !reflect.DeepEqual(got, want) {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestNextTree(t *testing.T) {
	in := clientHeader + "<message xml:lang='en' xmlns:p='urn:p' p:a='1' to='x'>one<![CDATA[two]]><body>b</body>three</message>"
	es, err := readStream(t, in, Limits{})
	if err != io.EOF || len(es) != 1 {
		t.Fatalf("got %d elements, err %v", len(es), err)
	}
	want := &Element{
		Name: xml.Name{Space: NSClient, Local: "message"},
		Attr: []xml.Attr{
			{Name: xml.Name{Space: NSXML, Local: "lang"}, Value: "en"},
			{Name: xml.Name{Space: "urn:p", Local: "a"}, Value: "1"},
			{Name: xml.Name{Local: "to"}, Value: "x"},
		},
		Nodes: []Node{
			{Text: "onetwo"},
			{Elem: &Element{Name: xml.Name{Space: NSClient, Local: "body"}, Nodes: []Node{{Text: "b"}}}},
			{Text: "three"},
		},
	}
	if got := es[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if got, want := es[0].Lang(), "en"; got != want {
		t.Errorf("Lang() = %q, want %q", got, want)
	}
}

func TestNextErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
		cond string
	}{
		{"mismatched end tag", "<a></b>", Limits{}, "not-well-formed"},
		{"mismatched prefix", "<a xmlns:p='u' xmlns:q='u'><p:b></q:b></a>", Limits{}, "not-well-formed"},
		{"unquoted attribute", "<a b=c/>", Limits{}, "not-well-formed"},
		{"attribute without value", "<a b/>", Limits{}, "not-well-formed"},
		{"EOF inside element", "<message><body>hi", Limits{}, "not-well-formed"},
		{"EOF inside tag", "<message to='x", Limits{}, "not-well-formed"},
		{"text in stream", "<a/>hello<b/>", Limits{}, "not-well-formed"},
		{"entity text in stream", "&#32;<a/>", Limits{}, "not-well-formed"},
		{"CDATA in stream", "<![CDATA[ ]]>", Limits{}, "not-well-formed"},
		{"byte order mark in stream", "\xEF\xBB\xBF<a/>", Limits{}, "not-well-formed"},
		{"undeclared element prefix", "<x:a/>", Limits{}, "not-well-formed"},
		{"undeclared attribute prefix", "<a x:b='1'/>", Limits{}, "not-well-formed"},
		{"prefix out of scope", "<a><b xmlns:p='u'/><p:c/></a>", Limits{}, "not-well-formed"},
		{"duplicate attribute", "<a b='1' b='2'/>", Limits{}, "not-well-formed"},
		{"duplicate attribute after resolution", "<a xmlns:p='u' xmlns:q='u' p:b='1' q:b='2'/>", Limits{}, "not-well-formed"},
		{"duplicate declaration", "<a xmlns:p='u' xmlns:p='v'/>", Limits{}, "not-well-formed"},
		{"unknown entity", "<a>&foo;</a>", Limits{}, "not-well-formed"},
		{"NUL character", "<a>&#0;</a>", Limits{}, "not-well-formed"},
		{"control character", "<a>\x01</a>", Limits{}, "not-well-formed"},
		{"invalid UTF-8", "<a>\xff</a>", Limits{}, "not-well-formed"},
		{"]]> in text", "<a>]]></a>", Limits{}, "not-well-formed"},
		{"wrong stream end tag", "</stream:foo>", Limits{}, "not-well-formed"},
		{"stray end tag", "</a>", Limits{}, "not-well-formed"},
		{"xml prefix rebound", "<a xmlns:xml='urn:x'/>", Limits{}, "not-well-formed"},
		{"xmlns prefix declared", "<a xmlns:xmlns='urn:x'/>", Limits{}, "not-well-formed"},
		{"xml namespace on other prefix", "<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>", Limits{}, "not-well-formed"},
		{"xml namespace as default", "<a xmlns='http://www.w3.org/XML/1998/namespace'/>", Limits{}, "not-well-formed"},
		{"prefix undeclared", "<a xmlns:p=''/>", Limits{}, "not-well-formed"},
		{"element in xml namespace", "<xml:a/>", Limits{}, "not-well-formed"},
		{"element with xmlns prefix", "<xmlns:a/>", Limits{}, "not-well-formed"},
		{"colon at end of name", "<a:/>", Limits{}, "not-well-formed"},
		{"colon at start of name", "<a :b='1'/>", Limits{}, "not-well-formed"},
		{"two colons", "<a:b:c/>", Limits{}, "not-well-formed"},
		{"local part not a name", "<p:1a xmlns:p='u'/>", Limits{}, "not-well-formed"},
		{"local part starts with a name character", "<p:\u00B7a xmlns:p='u'/>", Limits{}, "not-well-formed"},
		{"namespace named xml", "<a xmlns:p='xml' p:b='1'/>", Limits{}, "not-well-formed"},
		{"duplicate among many attributes", "<a" + manyAttrs(20) + " a7='x'/>", Limits{}, "not-well-formed"},
		{"XML version 1.1", "<?xml version='1.1'?>", Limits{}, "not-well-formed"},

		{"comment in stream", "<!-- hi -->", Limits{}, "restricted-xml"},
		{"comment in stanza", "<a><!-- hi --></a>", Limits{}, "restricted-xml"},
		{"processing instruction", "<?foo bar?>", Limits{}, "restricted-xml"},
		{"processing instruction in stanza", "<a><?foo?></a>", Limits{}, "restricted-xml"},
		{"XML declaration in stream", "<?xml version='1.0'?>", Limits{}, "restricted-xml"},
		{"encoding declaration in stream", "<?xml version='1.0' encoding='ISO-8859-1'?>", Limits{}, "restricted-xml"},
		{"DOCTYPE", "<!DOCTYPE a [<!ENTITY x 'y'>]>", Limits{}, "restricted-xml"},
		{"entity declaration", "<!ENTITY x 'y'>", Limits{}, "restricted-xml"},
		{"DOCTYPE in stanza", "<a><!DOCTYPE a></a>", Limits{}, "restricted-xml"},

		{"too large", "<message><body>" + strings.Repeat("x", 100) + "</body></message>", Limits{MaxStanzaBytes: 100}, "policy-violation"},
		{"too deep", "<a><b><c/></b></a>", Limits{MaxDepth: 2}, "policy-violation"},
		{"too many attributes", "<a b='1' c='2' d='3'/>", Limits{MaxAttrs: 2}, "policy-violation"},
		{"too many namespace declarations", "<a" + manyDecls(65) + "/>", Limits{}, "policy-violation"},
		{"too many attributes deep", "<a><b c='1' d='2' e='3'/></a>", Limits{MaxAttrs: 2}, "policy-violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readStream(t, clientHeader+tt.in, tt.lim)
			if got := condition(err); got != tt.cond {
				t.Errorf("error = %v, want condition %q", err, tt.cond)
			}
		})
	}
}

func TestErrorsAreSticky(t *testing.T) {
	r := NewReader(strings.NewReader(clientHeader+"<a><!-- x --></a><b/>"), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	_, err1 := r.Next()
	_, err2 := r.Next()
	if condition(err1) != "restricted-xml" || err2 != err1 {
		t.Errorf("errors %v, %v; want the same restricted-xml error twice", err1, err2)
	}
}

func TestClose(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"end tag", "<a/></stream:stream>", ErrClosed},
		{"end tag after whitespace", "<a/> \n </stream:stream >", ErrClosed},
		{"EOF between stanzas", "<a/>  ", io.EOF},
		{"EOF right after header", "", io.EOF},
		{"end tag with other prefix", "<a/></s:stream>", &Error{Condition: "not-well-formed"}},
		{"end tag of other element", "<a/></stream:features>", &Error{Condition: "not-well-formed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := readStream(t, clientHeader+tt.in, Limits{})
			if len(es) != strings.Count(tt.in, "<a/>") {
				t.Errorf("got %d elements", len(es))
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}

	r := NewReader(strings.NewReader(clientHeader+"</stream:stream>"), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Next(); err != ErrClosed {
			t.Errorf("Next = %v, want ErrClosed", err)
		}
	}
}

func TestReadHeader(t *testing.T) {
	const streamNS = "xmlns:stream='http://etherx.jabber.org/streams'"
	tests := []struct {
		name string
		in   string
		want Header
		cond string
	}{
		{name: "client", in: clientHeader,
			want: Header{To: "example.com", Version: "1.0", Lang: "en", DefaultNS: NSClient}},
		{name: "no declaration", in: "<stream:stream xmlns='jabber:client' " + streamNS + " from='a@b' id='x1'>",
			want: Header{From: "a@b", ID: "x1", DefaultNS: NSClient}},
		{name: "declaration with encoding", in: `<?xml version="1.0" encoding="UTF-8"?>` + "\n<stream:stream xmlns='jabber:server' " + streamNS + ">",
			want: Header{DefaultNS: NSServer}},
		{name: "leading whitespace", in: "\r\n  <stream:stream " + streamNS + " xmlns='jabber:client' to='a'>",
			want: Header{To: "a", DefaultNS: NSClient}},
		{name: "byte order mark", in: "\xEF\xBB\xBF<?xml version='1.0'?><stream:stream xmlns='jabber:client' " + streamNS + ">",
			want: Header{DefaultNS: NSClient}},
		{name: "other stream prefix", in: "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>",
			want: Header{DefaultNS: NSClient}},
		{name: "server with dialback", in: "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' " + streamNS + " from='a.example' to='b.example' version='1.0'>",
			want: Header{From: "a.example", To: "b.example", Version: "1.0", DefaultNS: NSServer}},

		{name: "wrong element", in: "<stream:foo xmlns='jabber:client' " + streamNS + ">", cond: "invalid-namespace"},
		{name: "wrong stream namespace", in: "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>", cond: "invalid-namespace"},
		{name: "streams as default namespace", in: "<stream xmlns='http://etherx.jabber.org/streams'>", cond: "invalid-namespace"},
		{name: "no default namespace", in: "<stream:stream " + streamNS + ">", cond: "invalid-namespace"},
		{name: "other default namespace", in: "<stream:stream xmlns='urn:x' " + streamNS + ">", cond: "invalid-namespace"},
		{name: "undeclared stream prefix", in: "<stream:stream xmlns='jabber:client'>", cond: "bad-namespace-prefix"},
		{name: "non-UTF-8 encoding", in: "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns='jabber:client' " + streamNS + ">", cond: "unsupported-encoding"},
		{name: "UTF-16 encoding", in: "<?xml version='1.0' encoding='UTF-16'?>", cond: "unsupported-encoding"},
		{name: "XML 1.1", in: "<?xml version='1.1'?>", cond: "not-well-formed"},
		{name: "DOCTYPE", in: "<?xml version='1.0'?><!DOCTYPE stream:stream><stream:stream xmlns='jabber:client' " + streamNS + ">", cond: "restricted-xml"},
		{name: "comment", in: "<!-- hi --><stream:stream xmlns='jabber:client' " + streamNS + ">", cond: "restricted-xml"},
		{name: "processing instruction", in: "<?xml-stylesheet href='x'?><stream:stream xmlns='jabber:client' " + streamNS + ">", cond: "restricted-xml"},
		{name: "second declaration", in: "<?xml version='1.0'?><?xml version='1.0'?>", cond: "restricted-xml"},
		{name: "text before header", in: "hello<stream:stream>", cond: "not-well-formed"},
		{name: "broken byte order mark", in: "\xEF\xBB<stream:stream>", cond: "not-well-formed"},
		{name: "text after declaration", in: "<?xml version='1.0'?>hello<stream:stream>", cond: "not-well-formed"},
		{name: "end tag", in: "</stream:stream>", cond: "not-well-formed"},
		{name: "EOF inside header", in: "<stream:stream xmlns='jabber:client'", cond: "not-well-formed"},
		{name: "duplicate attribute", in: "<stream:stream xmlns='jabber:client' " + streamNS + " to='a' to='b'>", cond: "not-well-formed"},
		{name: "header too large", in: "<stream:stream xmlns='jabber:client' " + streamNS + " to='" + strings.Repeat("a", maxHeaderBytes) + "'>", cond: "policy-violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewReader(strings.NewReader(tt.in), Limits{}).ReadHeader()
			if tt.cond != "" {
				if c := condition(err); c != tt.cond {
					t.Fatalf("error = %v, want condition %q", err, tt.cond)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReadHeaderEOF(t *testing.T) {
	for _, in := range []string{"", " \n "} {
		_, err := NewReader(strings.NewReader(in), Limits{}).ReadHeader()
		if err != io.EOF {
			t.Errorf("ReadHeader(%q) = %v, want io.EOF", in, err)
		}
	}
}

func TestHeaderResolvesStanzas(t *testing.T) {
	in := "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams'>" +
		"<db:result from='a' to='b'>key</db:result><message/>"
	r := NewReader(strings.NewReader(in), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []xml.Name{{Space: "jabber:server:dialback", Local: "result"}, {Space: NSServer, Local: "message"}} {
		e, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name != want {
			t.Errorf("name = %v, want %v", e.Name, want)
		}
	}
}

// TestHeaderBindingsShared checks that a header declaring only the usual
// two namespaces, in either order, keeps no copy of them, and that
// stanzas resolve against them as against any other header's.
func TestHeaderBindingsShared(t *testing.T) {
	const ns = "xmlns:stream='http://etherx.jabber.org/streams'"
	for _, tc := range []struct {
		header string
		prefix string // of the stream namespace
		space  string // of <message/>
		shared bool
	}{
		{"<stream:stream xmlns='jabber:client' " + ns + ">", "stream", NSClient, true},
		{"<stream:stream " + ns + " xmlns='jabber:client'>", "stream", NSClient, true},
		{"<stream:stream xmlns='jabber:server' " + ns + ">", "stream", NSServer, true},
		{"<stream:stream " + ns + " xmlns='jabber:server'>", "stream", NSServer, true},
		{"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' " + ns + ">", "stream", NSServer, false},
		{"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'>", "s", NSClient, false},
	} {
		r := NewReader(strings.NewReader(tc.header+"<message/><"+tc.prefix+":error/>"), Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatalf("%s: %v", tc.header, err)
		}
		shared := false
		for _, c := range commonBindings {
			shared = shared || &r.base[0] == &c[0]
		}
		if shared != tc.shared {
			t.Errorf("%s: shared = %v, want %v", tc.header, shared, tc.shared)
		}
		for _, want := range []xml.Name{{Space: tc.space, Local: "message"}, {Space: NSStream, Local: "error"}} {
			e, err := r.Next()
			if err != nil {
				t.Fatalf("%s: %v", tc.header, err)
			}
			if e.Name != want {
				t.Errorf("%s: name = %v, want %v", tc.header, e.Name, want)
			}
		}
	}
}

func TestSelfClosingHeader(t *testing.T) {
	r := NewReader(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'/><a/>"), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != ErrClosed {
		t.Errorf("Next = %v, want ErrClosed", err)
	}
}

func TestNextBeforeHeader(t *testing.T) {
	r := NewReader(strings.NewReader("<a/>"), Limits{})
	if _, err := r.Next(); err == nil || condition(err) != "" {
		t.Errorf("Next = %v, want a plain error", err)
	}
}

func TestReset(t *testing.T) {
	const header2 = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' id='second' version='1.0'>"
	in := clientHeader + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>" +
		"\n" + header2 + "<iq type='set' id='b'/>"
	// One byte per Read: nothing may be lost to read-ahead.
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	auth, err := r.Next()
	if err != nil || !auth.Is("urn:ietf:params:xml:ns:xmpp-sasl", "auth") {
		t.Fatalf("Next = %v, %v; want <auth/>", auth, err)
	}
	r.Reset()
	if _, err := r.Next(); err == nil {
		t.Fatal("Next after Reset without ReadHeader succeeded")
	}
	h, err := r.ReadHeader()
	if err != nil {
		t.Fatalf("ReadHeader after Reset: %v", err)
	}
	if got, want := h.ID, "second"; got != want {
		t.Errorf("ID = %q, want %q", got, want)
	}
	iq, err := r.Next()
	if err != nil || !iq.Is(NSClient, "iq") {
		t.Fatalf("Next = %v, %v; want <iq/>", iq, err)
	}
	if _, err := r.ReadHeader(); err == nil {
		t.Error("second ReadHeader without Reset succeeded")
	}
}

// TestNoReadAhead checks that Next leaves the bytes after an element in the
// underlying reader, as STARTTLS needs.
func TestNoReadAhead(t *testing.T) {
	const rest = "\x16\x03\x01 TLS ClientHello"
	for _, el := range []string{"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls >"} {
		src := bytes.NewReader([]byte(clientHeader + el + rest))
		r := NewReader(src, Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if got, want := src.Len(), len(rest); got != want {
			t.Errorf("%s: %d bytes left unread, want %d", el, got, want)
		}
	}
}

func TestLimits(t *testing.T) {
	const stanza = "<message to='a'><body>0123456789</body></message>" // 48 bytes
	n := len(stanza)
	tests := []struct {
		name string
		in   string
		lim  Limits
		ok   bool
	}{
		{"size at limit", stanza, Limits{MaxStanzaBytes: n}, true},
		{"size over limit", stanza, Limits{MaxStanzaBytes: n - 1}, false},
		{"whitespace does not count", strings.Repeat(" \n", 1000) + stanza + strings.Repeat(" ", 1000) + stanza, Limits{MaxStanzaBytes: n}, true},
		{"self-closing at limit", "<presence/>", Limits{MaxStanzaBytes: len("<presence/>")}, true},
		{"self-closing over limit", "<presence/>", Limits{MaxStanzaBytes: len("<presence/>") - 1}, false},
		{"depth at limit", "<a><b><c/></b></a>", Limits{MaxDepth: 3}, true},
		{"depth over limit", "<a><b><c/></b></a>", Limits{MaxDepth: 2}, false},
		{"stanza is depth 1", "<a/>", Limits{MaxDepth: 1}, true},
		{"attributes at limit", "<a xmlns='jabber:client' xmlns:p='u' b='1' p:c='2'/>", Limits{MaxAttrs: 2}, true},
		{"attributes over limit", "<a b='1' c='2' d='3'/>", Limits{MaxAttrs: 2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readStream(t, clientHeader+tt.in, tt.lim)
			if tt.ok && err != io.EOF {
				t.Errorf("error = %v, want io.EOF after all elements", err)
			}
			if !tt.ok && condition(err) != "policy-violation" {
				t.Errorf("error = %v, want policy-violation", err)
			}
		})
	}
}

func TestSetLimits(t *testing.T) {
	big := "<message><body>" + strings.Repeat("x", 200) + "</body></message>"
	r := NewReader(strings.NewReader(clientHeader+"<auth/>"+big+big), Limits{MaxStanzaBytes: 100})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	r.SetLimits(Limits{MaxStanzaBytes: 1000})
	if _, err := r.Next(); err != nil {
		t.Fatalf("Next after raising the limit: %v", err)
	}
	r.SetLimits(Limits{MaxStanzaBytes: 100})
	if _, err := r.Next(); condition(err) != "policy-violation" {
		t.Fatalf("Next after lowering the limit = %v, want policy-violation", err)
	}
}

// endless yields head, then n bytes of fill, then tail, and counts what was
// read from it.
type endless struct {
	head, tail string
	n          int
	read       int
}

func (s *endless) Read(p []byte) (int, error) {
	total := len(s.head) + s.n + len(s.tail)
	if s.read >= total {
		return 0, io.EOF
	}
	i := 0
	for ; i < len(p) && s.read < total; i++ {
		switch {
		case s.read < len(s.head):
			p[i] = s.head[s.read]
		case s.read < len(s.head)+s.n:
			p[i] = 'a'
		default:
			p[i] = s.tail[s.read-len(s.head)-s.n]
		}
		s.read++
	}
	return i, nil
}

func TestHugeTextCutAtLimit(t *testing.T) {
	const limit = 64 << 10
	for _, buffered := range []bool{false, true} {
		src := &endless{head: clientHeader + "<message><body>", n: 10 << 20, tail: "</body></message>"}
		var in io.Reader = src
		if buffered {
			in = bufio.NewReaderSize(src, 4096)
		}
		r := NewReader(in, Limits{MaxStanzaBytes: limit})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		_, err := r.Next()
		if condition(err) != "policy-violation" {
			t.Fatalf("Next = %v, want policy-violation", err)
		}
		consumed := src.read - len(clientHeader)
		if consumed < limit || consumed > limit+4096 {
			t.Errorf("buffered=%v: %d bytes consumed for a limit of %d", buffered, consumed, limit)
		}
	}
}

// timeoutOnce returns a timeout error once, at position at.
type timeoutOnce struct {
	r    io.Reader
	at   int
	n    int
	done bool
}

var errTimeout = errors.New("i/o timeout")

func (s *timeoutOnce) Read(p []byte) (int, error) {
	if !s.done && s.n == s.at {
		s.done = true
		return 0, errTimeout
	}
	if !s.done && s.n+len(p) > s.at {
		p = p[:s.at-s.n]
	}
	n, err := s.r.Read(p)
	s.n += n
	return n, err
}

func TestReadErrorBetweenStanzas(t *testing.T) {
	in := clientHeader + "<a/> <b/>"
	src := &timeoutOnce{r: strings.NewReader(in), at: len(clientHeader) + len("<a/> ")}
	r := NewReader(src, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, errTimeout) {
		t.Fatalf("Next = %v, want the timeout", err)
	}
	e, err := r.Next()
	if err != nil || e.Name.Local != "b" {
		t.Fatalf("Next after the timeout = %v, %v; want <b/>", e, err)
	}
}

func TestReadErrorInsideStanza(t *testing.T) {
	in := clientHeader + "<a><b/></a><c/>"
	src := &timeoutOnce{r: strings.NewReader(in), at: len(clientHeader) + 3}
	r := NewReader(src, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	_, err1 := r.Next()
	if !errors.Is(err1, errTimeout) || condition(err1) != "" {
		t.Fatalf("Next = %v, want the timeout", err1)
	}
	if _, err2 := r.Next(); err2 != err1 {
		t.Errorf("Next after a failure inside a stanza = %v, want %v again", err2, err1)
	}
}

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
		want string // AppendXML with parent namespace ""
		cond string
	}{
		{name: "open", in: "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
			want: "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>"},
		{name: "message", in: "<message xmlns='jabber:client' to='a'><body>hi</body></message>",
			want: "<message xmlns='jabber:client' to='a'><body>hi</body></message>"},
		{name: "no namespace", in: "<message/>", want: "<message/>"},
		{name: "declaration and whitespace", in: "\n<?xml version='1.0'?>\n<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>\r\n",
			want: "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"},
		{name: "at size limit", in: " <a>0123</a> ", lim: Limits{MaxStanzaBytes: 11}, want: "<a>0123</a>"},
		{name: "at depth limit", in: "<a><b/></a>", lim: Limits{MaxDepth: 2}, want: "<a><b/></a>"},

		{name: "empty", in: " \n", cond: "not-well-formed"},
		{name: "two elements", in: "<a/><b/>", cond: "not-well-formed"},
		{name: "trailing text", in: "<a/>x", cond: "not-well-formed"},
		{name: "leading text", in: "x<a/>", cond: "not-well-formed"},
		{name: "unclosed", in: "<a><b/>", cond: "not-well-formed"},
		{name: "end tag", in: "</stream:stream>", cond: "not-well-formed"},
		{name: "stream prefix undeclared", in: "<stream:features/>", cond: "not-well-formed"},
		{name: "comment", in: "<a><!-- x --></a>", cond: "restricted-xml"},
		{name: "trailing comment", in: "<a/><!-- x -->", cond: "not-well-formed"},
		{name: "DOCTYPE", in: "<!DOCTYPE a><a/>", cond: "restricted-xml"},
		{name: "encoding", in: "<?xml version='1.0' encoding='latin1'?><a/>", cond: "unsupported-encoding"},
		{name: "over size limit", in: "<a>01234</a>", lim: Limits{MaxStanzaBytes: 11}, cond: "policy-violation"},
		{name: "over depth limit", in: "<a><b><c/></b></a>", lim: Limits{MaxDepth: 2}, cond: "policy-violation"},
		{name: "over attribute limit", in: "<a b='1' c='2'/>", lim: Limits{MaxAttrs: 1}, cond: "policy-violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseFrame([]byte(tt.in), tt.lim)
			if tt.cond != "" {
				if c := condition(err); c != tt.cond {
					t.Fatalf("error = %v, want condition %q", err, tt.cond)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFrame: %v", err)
			}
			if got := string(AppendXML(nil, e, "")); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestErrorIs(t *testing.T) {
	_, err := ParseFrame([]byte("<a><!-- --></a>"), Limits{})
	if !errors.Is(err, &Error{Condition: "restricted-xml"}) {
		t.Errorf("errors.Is(%v, restricted-xml) = false", err)
	}
	if errors.Is(err, &Error{Condition: "not-well-formed"}) {
		t.Errorf("errors.Is(%v, not-well-formed) = true", err)
	}
	if got, want := (&Error{Condition: "policy-violation", Text: "too big"}).Error(), "xmlstream: policy-violation: too big"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestGolden reads testdata/stream.xml and compares the AppendXML encoding
// of each element, one per line, with testdata/stream.golden; then it reads
// the golden encoding back and checks that it gives the same elements.
func TestGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "stream.xml"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(in), Limits{MaxStanzaBytes: 10000, MaxDepth: 10, MaxAttrs: 20})
	h, err := r.ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	var es []*Element
	var out []byte
	for {
		e, err := r.Next()
		if err == ErrClosed {
			break
		}
		if err != nil {
			t.Fatalf("element %d: %v", len(es)+1, err)
		}
		es = append(es, e)
		out = AppendXML(out, e, h.DefaultNS)
		out = append(out, '\n')
	}
	golden := filepath.Join("testdata", "stream.golden")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("encoding differs from %s (run with -update to accept):\n%s", golden, out)
	}

	again, err := readStream(t, clientHeader+string(out), Limits{})
	if err != io.EOF {
		t.Fatalf("reading the golden encoding: %v", err)
	}
	if !reflect.DeepEqual(again, es) {
		t.Errorf("golden encoding reads back differently")
	}
}

// TestIdleReaderHoldsNoBuffers reads a large stanza on many readers and
// checks that, once the stanzas are dropped, the readers keep next to
// nothing: no decoder buffer survives Next.
func TestIdleReaderHoldsNoBuffers(t *testing.T) {
	const n = 50
	data := []byte(clientHeader + "<message><body>" + strings.Repeat("x", 64<<10) + "</body></message>")
	readers := make([]*Reader, n)
	for i := range readers {
		readers[i] = NewReader(bytes.NewReader(data), Limits{})
		if _, err := readers[i].ReadHeader(); err != nil {
			t.Fatal(err)
		}
	}
	before := heapAlloc()
	for _, r := range readers {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	after := heapAlloc()
	per := (int64(after) - int64(before)) / n
	t.Logf("%d bytes per reader", per)
	if per > 1024 {
		t.Errorf("each idle reader holds %d more bytes after a 64 KiB stanza", per)
	}
	runtime.KeepAlive(readers)
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestStampFromInPlace: a parsed stanza has room for the 'from' the server
// stamps on it, and stamping it leaves the children's attributes alone.
func TestStampFromInPlace(t *testing.T) {
	tests := []string{
		`<message to='b@example.org' id='1' type='chat'><body xml:lang='en'>hi</body><x xmlns='urn:x' a='1' b='2'/></message>`,
		`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping' k='v'/></iq>`,
		`<presence><show>away</show></presence>`,
	}
	for _, in := range tests {
		e, err := ParseFrame([]byte(in), Limits{})
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		want := strings.Replace(in, ">", " from='a@example.org/r'>", 1)
		if strings.HasPrefix(in, "<presence>") {
			want = strings.Replace(in, "<presence>", "<presence from='a@example.org/r'>", 1)
		}
		var before *xml.Attr
		if len(e.Attr) > 0 {
			if cap(e.Attr) == len(e.Attr) {
				t.Errorf("%s: no room after the attributes (len = cap = %d): stamping from copies them", in, len(e.Attr))
			}
			before = &e.Attr[0]
		}
		e.SetAttr("from", "a@example.org/r")
		if before != nil && &e.Attr[0] != before {
			t.Errorf("%s: stamping from moved the attributes to a new array", in)
		}
		if got := string(AppendXML(nil, e, "")); got != want {
			t.Errorf("stamped:\n got %s\nwant %s", got, want)
		}
	}
}
