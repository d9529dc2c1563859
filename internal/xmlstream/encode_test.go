package xmlstream

import (
	"encoding/xml"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestAppendXMLEscaping(t *testing.T) {
	tests := []struct {
		name string
		e    *Element
		want string
	}{
		{"text", New("", "a").SetText("x<y>&z\"'\n\t"), "<a>x&lt;y&gt;&amp;z\"'\n\t</a>"},
		{"carriage return", New("", "a").SetText("a\r\nb"), "<a>a&#xD;\nb</a>"},
		{"control characters", New("", "a").SetText("a\x00b\x1fc\x7f"), "<a>a\uFFFDb\uFFFDc\x7f</a>"},
		{"invalid UTF-8", New("", "a").SetText("a\xffb\xc3"), "<a>a\uFFFDb\uFFFD</a>"},
		{"non-characters", New("", "a").SetText("a\uFFFEb\uFFFF"), "<a>a\uFFFDb\uFFFD</a>"},
		{"non-ASCII", New("", "a").SetText("ü€😀"), "<a>ü€😀</a>"},
		{"attribute", New("", "a", "v", "x<y>&z\"'\n\t\r"), "<a v='x&lt;y&gt;&amp;z&quot;&apos;&#xA;&#x9;&#xD;'/>"},
		{"namespace value", New("urn:a'b", "a"), "<a xmlns='urn:a&apos;b'/>"},
		{"empty attribute left out", New("", "a", "to", "", "id", "1"), "<a id='1'/>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendXML(nil, tt.e, "")); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestAppendXMLNamespaces(t *testing.T) {
	attr := func(space, local, value string) xml.Attr {
		return xml.Attr{Name: xml.Name{Space: space, Local: local}, Value: value}
	}
	many := New(NSClient, "a")
	for i := range 12 {
		many.Attr = append(many.Attr, attr(fmt.Sprintf("urn:%d", i), "x", "1"))
	}
	tests := []struct {
		name   string
		e      *Element
		parent string
		want   string
	}{
		{"same as parent", New(NSClient, "message"), NSClient, "<message/>"},
		{"declared at top", New(NSClient, "message"), "", "<message xmlns='jabber:client'/>"},
		{"child inherits", New(NSClient, "message").Append(New(NSClient, "body")), NSClient, "<message><body/></message>"},
		{"child in other namespace", New(NSClient, "iq").Append(New("urn:xmpp:ping", "ping")), NSClient,
			"<iq><ping xmlns='urn:xmpp:ping'/></iq>"},
		{"grandchild back in parent namespace", New(NSClient, "iq").Append(New("urn:x", "x").Append(New(NSClient, "y"))), NSClient,
			"<iq><x xmlns='urn:x'><y xmlns='jabber:client'/></x></iq>"},
		{"no namespace under a namespace", New("urn:x", "x").Append(New("", "y")), "", "<x xmlns='urn:x'><y xmlns=''/></x>"},
		{"stream element in a stream", New(NSStream, "error").Append(New("urn:ietf:params:xml:ns:xmpp-streams", "host-unknown")), NSClient,
			"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"},
		{"stream element alone", New(NSStream, "features").Append(New(NSStream, "x")), "",
			"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><stream:x/></stream:features>"},
		{"xml:lang", &Element{Name: xml.Name{Space: NSClient, Local: "body"}, Attr: []xml.Attr{attr(NSXML, "lang", "en")}}, NSClient,
			"<body xml:lang='en'/>"},
		{"xml prefix as namespace", &Element{Name: xml.Name{Local: "body"}, Attr: []xml.Attr{attr("xml", "lang", "en")}}, "",
			"<body xml:lang='en'/>"},
		{"prefixed attributes", &Element{Name: xml.Name{Local: "a"}, Attr: []xml.Attr{
			attr("urn:p", "x", "1"), attr("urn:q", "y", "2"), attr("urn:p", "z", "3"), attr("", "w", "4")}}, "",
			"<a xmlns:a0='urn:p' a0:x='1' xmlns:a1='urn:q' a1:y='2' a0:z='3' w='4'/>"},
		{"more than ten attribute namespaces", many, NSClient,
			"<a xmlns:a0='urn:0' a0:x='1' xmlns:a1='urn:1' a1:x='1' xmlns:a2='urn:2' a2:x='1' xmlns:a3='urn:3' a3:x='1' " +
				"xmlns:a4='urn:4' a4:x='1' xmlns:a5='urn:5' a5:x='1' xmlns:a6='urn:6' a6:x='1' xmlns:a7='urn:7' a7:x='1' " +
				"xmlns:a8='urn:8' a8:x='1' xmlns:a9='urn:9' a9:x='1' xmlns:a10='urn:10' a10:x='1' xmlns:a11='urn:11' a11:x='1'/>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendXML(nil, tt.e, tt.parent))
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			// What is written must read back as the same element.
			var back *Element
			var err error
			if tt.parent == "" {
				back, err = ParseFrame([]byte(got), Limits{})
			} else {
				var es []*Element
				es, err = readStream(t, clientHeader+got, Limits{})
				if err == io.EOF && len(es) == 1 {
					back, err = es[0], nil
				}
			}
			if err != nil {
				t.Fatalf("reading back %s: %v", got, err)
			}
			if want := normalize(tt.e); !reflect.DeepEqual(back, want) {
				t.Errorf("read back %#v\nwant      %#v", back, want)
			}
		})
	}
}

// normalize returns e as the reader would give it: attributes in the "xml"
// pseudo-namespace moved to NSXML.
func normalize(e *Element) *Element {
	c := e.Copy()
	var walk func(*Element)
	walk = func(e *Element) {
		for i := range e.Attr {
			if e.Attr[i].Name.Space == "xml" {
				e.Attr[i].Name.Space = NSXML
			}
		}
		for _, n := range e.Nodes {
			if n.Elem != nil {
				walk(n.Elem)
			}
		}
	}
	walk(c)
	return c
}

func TestString(t *testing.T) {
	e := New(NSClient, "message", "to", "a@b").Append(New(NSClient, "body").SetText("hi"))
	if got, want := e.String(), "<message xmlns='jabber:client' to='a@b'><body>hi</body></message>"; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

// TestRoundTrip reads elements, encodes them and reads them again, in a
// stream and as WebSocket frames.
func TestRoundTrip(t *testing.T) {
	inputs := []string{
		"<message to='a@b' type='chat' xml:lang='en'><body>Hello &amp; &lt;welcome&gt;</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
		"<iq type='result' id='1'><query xmlns='jabber:iq:roster'><item jid='c@d' name='C &apos;D&apos;'><group>Friends</group></item></query></iq>",
		"<presence><status>a\r\nb\tc</status><x xmlns='urn:x' v='a&#xD;&#xA;&#x9;b'/></presence>",
		"<x:a xmlns:x='urn:x' xmlns:y='urn:y' y:b='1' x:c='2'><x:d>text<![CDATA[<cdata>]]>more</x:d><e xmlns=''/></x:a>",
		"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>bad</text></stream:error>",
		"<a xmlns:s='http://etherx.jabber.org/streams'><s:b><c/></s:b></a>",
		"<a>  leading and trailing whitespace  </a>",
		"<a>\U0001F600 ünïcödé</a>",
	}
	for _, in := range inputs {
		es, err := readStream(t, clientHeader+in, Limits{})
		if err != io.EOF || len(es) != 1 {
			t.Fatalf("%s: %d elements, %v", in, len(es), err)
		}
		e := es[0]
		enc := AppendXML(nil, e, NSClient)
		again, err := readStream(t, clientHeader+string(enc), Limits{})
		if err != io.EOF || len(again) != 1 {
			t.Fatalf("%s: reading back %s: %d elements, %v", in, enc, len(again), err)
		}
		if !reflect.DeepEqual(again[0], e) {
			t.Errorf("%s: stream round trip through %s differs", in, enc)
		}
		frame := AppendXML(nil, e, "")
		f, err := ParseFrame(frame, Limits{})
		if err != nil {
			t.Fatalf("%s: ParseFrame(%s): %v", in, frame, err)
		}
		if !reflect.DeepEqual(f, e) {
			t.Errorf("%s: frame round trip through %s differs", in, frame)
		}
		if strings.Contains(string(frame), "xmlns:stream") != strings.Contains(in, "streams") {
			t.Errorf("%s: frame %s: stream prefix declared wrongly", in, frame)
		}
	}
}
