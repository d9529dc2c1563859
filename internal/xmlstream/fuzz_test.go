package xmlstream

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var fuzzSeeds = []string{
	"<message to='a@b' type='chat'><body>hi</body></message>",
	"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq> <presence/>",
	"<x:a xmlns:x='urn:x' xmlns:y='urn:y' y:b='1'><x:c>t<![CDATA[<d>]]>&amp;&#x41;</x:c></x:a>",
	"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
	"<a xml:lang='en' b='&quot;&#9;&#xD;'>\r\n</a></stream:stream>",
	"<a><!-- c --></a>",
	"<?xml version='1.0'?><a/>",
	"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
	"<a xmlns=''><b xmlns:p='u'><p:c p:d='1'/></b></a>",
	"<a></b>",
	"text<a/>",
	"<a xmlns:stream='urn:x'><stream:b><c xmlns='http://etherx.jabber.org/streams'><d/></c></stream:b></a>",
	"<a xmlns:p='urn:p' xmlns:q='urn:q' p:x='1' q:x='2' x='3' xml:space='default'/>",
	"<p:é xmlns:p='u'>&#xD;&#xA;\r\n&#x10FFFF;&#xD800;</p:é>",
	"<a>x<![CDATA[]]>y<![CDATA[z]]><b/>w</a>",
	"<a xmlns:xml='http://www.w3.org/XML/1998/namespace' xmlns=''><b xmlns='urn:b'/></a>",
}

// checkRoundTrip checks that e, encoded with AppendXML, reads back equal in a
// client stream and as a WebSocket frame.
func checkRoundTrip(t *testing.T, e *Element) {
	t.Helper()
	enc := AppendXML(nil, e, NSClient)
	r := NewReader(bytes.NewReader(append([]byte(clientHeader), enc...)), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	e2, err := r.Next()
	if err != nil {
		t.Fatalf("reading back %q: %v", enc, err)
	}
	if !reflect.DeepEqual(e, e2) {
		t.Fatalf("%q reads back as %#v, want %#v", enc, e2, e)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after %q: %v, want io.EOF", enc, err)
	}
	frame := AppendXML(nil, e, "")
	e3, err := ParseFrame(frame, Limits{})
	if err != nil {
		t.Fatalf("ParseFrame(%q): %v", frame, err)
	}
	if !reflect.DeepEqual(e, e3) {
		t.Fatalf("frame %q reads back as %#v, want %#v", frame, e3, e)
	}
}

func checkError(t *testing.T, err error) {
	t.Helper()
	var xe *Error
	if err != io.EOF && err != ErrClosed && !errors.As(err, &xe) {
		t.Fatalf("unexpected error %T %v", err, err)
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	if golden, err := os.ReadFile(filepath.Join("testdata", "stream.golden")); err == nil {
		f.Add(golden)
	}
	lim := Limits{MaxStanzaBytes: 1 << 14, MaxDepth: 32, MaxAttrs: 32}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(append([]byte(clientHeader), data...)), lim)
		h, err := r.ReadHeader()
		if err != nil {
			t.Fatal(err)
		}
		if h.DefaultNS != NSClient {
			t.Fatalf("DefaultNS = %q", h.DefaultNS)
		}
		for range 100 {
			e, err := r.Next()
			if err != nil {
				checkError(t, err)
				break
			}
			checkRoundTrip(t, e)
		}

		// The bytes as a whole stream, header included.
		r = NewReader(bytes.NewReader(data), lim)
		if _, err := r.ReadHeader(); err != nil {
			checkError(t, err)
			return
		}
		for range 100 {
			e, err := r.Next()
			if err != nil {
				checkError(t, err)
				break
			}
			AppendXML(nil, e, "")
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>"))
	f.Add([]byte("<message xmlns='jabber:client'><body>x</body></message>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseFrame(data, Limits{MaxStanzaBytes: 1 << 14, MaxDepth: 32, MaxAttrs: 32})
		if err != nil {
			var xe *Error
			if !errors.As(err, &xe) {
				t.Fatalf("unexpected error %T %v", err, err)
			}
			return
		}
		checkRoundTrip(t, e)
	})
}
