package xmlstream

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// FuzzDifferential reads arbitrary input with the reader and with the
// encoding/xml based reader it replaced (ref_test.go): as the stanzas of a
// client stream, as a whole stream with its header, and as a WebSocket
// frame. Both must accept the same input with the same elements and the
// same bytes consumed after each, and refuse the same input with the same
// condition, except for these deliberate differences, where the new reader
// follows XML 1.0 and encoding/xml was laxer:
//
//  1. A character reference to a surrogate (&#xD800;) is refused;
//     encoding/xml read it as U+FFFD.
//  2. Attributes must be separated by white space: <a b='1'c='2'/> is
//     refused.
//  3. Names follow XML 1.0 fifth edition, which RFC 6120 refers to;
//     encoding/xml used the fourth edition's tables, which differ for some
//     characters outside ASCII (U+00B7 starting a name, say, or emoji).
//
// and one difference in which error comes first:
//
//  4. When an element is both over the size limit and malformed past some
//     point, the readers may report different conditions: the new one
//     checks each character of text, attribute values and CDATA sections
//     when it reads it, where encoding/xml checked a run once it had read
//     all of it (and not at all if it ended in the middle of a reference).
//
// A mismatch is accepted only when it goes away once the input is rewritten
// to avoid 1 and 2 (surrogate references replaced, a space inserted after a
// quote followed by a name), when, for 4, both readers agree once the size
// limit is lifted, or, for 3, when the input has a character whose
// classification differs between the editions.
func FuzzDifferential(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(0))
	}
	for _, s := range diffSeeds {
		for sel := range uint8(len(diffLimits)) {
			f.Add([]byte(s), sel)
		}
	}
	for _, name := range []string{"stream.xml", "stream.golden"} {
		if data, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(data, uint8(1))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		lim := diffLimits[int(sel)%len(diffLimits)]
		checkSame(t, "stanzas", append([]byte(clientHeader), data...), lim)
		checkSame(t, "stream", data, lim)
		checkSame(t, "frame", data, lim)
	})
}

var diffLimits = []Limits{
	{},
	{MaxStanzaBytes: 1 << 14, MaxDepth: 32, MaxAttrs: 32},
	{MaxStanzaBytes: 40, MaxDepth: 3, MaxAttrs: 2},
	{MaxStanzaBytes: 100},
}

var diffSeeds = []string{
	"<a b='1'c='2'/>",
	"<a>&#xD800;</a>",
	"<a b='&#xDFFF;'/>",
	"<p:\u00B7a xmlns:p='u'/>",
	"<a\U0001F30D/>",
	"<a>\r\n\r\r</a><b c='\r\n\t'/>",
	"<a>]]&gt;]]]></a>",
	"<a><![CDATA[]]]]><![CDATA[>]]></a>",
	"<?xml version='1.0' encoding='utf-8' standalone='yes'?><a/>",
	"<?xml version = '1.1'?><a/>",
	"<?xml?><a/>",
	"<?xml'x'?><a/>",
	"<?xmlé?><a/>",
	"<!DOCTYPE a [<!ENTITY e '>'><!-- > --> <!x>]><a/>",
	"<!DOCTYPE <!-x><a/>",
	"<!--->--><a/>",
	"<!---- x -->",
	" &#32; <![CDATA[ ]]> <a/>",
	"<a>&#65;&#x41;&#x0041;&#0000065;&#x110000;&#xFFFE;&#1114111;</a>",
	"<a>&am;&ampx;&#;&#x;&#X41;& amp;</a>",
	"<a b='\"' c=\"'\" d='<'/>",
	"<a xmlns:p='urn:p' xmlns:q='urn:p' p:x='1' q:y='2' x='3' y='4' xml:x='5'/>",
	"<a xmlns='' xmlns:p='urn:p'><b xmlns='urn:b'><p:c p:d='' xmlns:p='urn:q'/></b></a>",
	"<a:b xmlns:a='u'></a:b></a:b>",
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'><db:result/></stream:stream>",
	"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'/>",
	"\xEF\xBB\xBF<?xml version='1.0'?><s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client' xml:lang='en' id='x' to='a' from='b' version='1.0'><s:features/></s:stream >",
	"<a>\xC3</a><a>\xC3\xA9\xED\xA0\x80\xEF\xBF\xBE</a>",
	"<a>é",
	"<a b='é",
	"<é:a xmlns:é='u'/><_:a xmlns:_='u'/>",
}

// outcome is what a reader made of some input.
type outcome struct {
	hdr   *Header
	elems []*Element
	used  []int // bytes consumed from the input after the header and each element
	err   error
}

type streamReader interface {
	ReadHeader() (Header, error)
	Next() (*Element, error)
}

func readOutcome(r streamReader, used func() int) outcome {
	var o outcome
	h, err := r.ReadHeader()
	if err != nil {
		o.err = err
		return o
	}
	o.hdr = &h
	o.used = append(o.used, used())
	for range 100 {
		e, err := r.Next()
		if err != nil {
			o.err = err
			return o
		}
		o.elems = append(o.elems, e)
		o.used = append(o.used, used())
	}
	return o
}

func frameOutcome(e *Element, err error) outcome {
	if err != nil {
		return outcome{err: err}
	}
	return outcome{elems: []*Element{e}}
}

func errClass(err error) string {
	var e *Error
	switch {
	case err == nil:
		return "none"
	case err == io.EOF:
		return "EOF"
	case err == ErrClosed:
		return "closed"
	case errors.As(err, &e):
		return e.Condition
	}
	return "other: " + err.Error()
}

// differ describes the first difference between two outcomes; "" if none.
func differ(got, want outcome) string {
	if (got.hdr == nil) != (want.hdr == nil) || got.hdr != nil && *got.hdr != *want.hdr {
		return fmt.Sprintf("header %+v, want %+v (errors %v, %v)", got.hdr, want.hdr, got.err, want.err)
	}
	for i := range min(len(got.elems), len(want.elems)) {
		if !reflect.DeepEqual(got.elems[i], want.elems[i]) {
			return fmt.Sprintf("element %d is %s, want %s", i, got.elems[i], want.elems[i])
		}
	}
	if len(got.elems) != len(want.elems) || errClass(got.err) != errClass(want.err) {
		return fmt.Sprintf("%d elements then %v, want %d then %v", len(got.elems), got.err, len(want.elems), want.err)
	}
	if !reflect.DeepEqual(got.used, want.used) {
		return fmt.Sprintf("consumed %v bytes, want %v", got.used, want.used)
	}
	return ""
}

// run reads data as kind with the new reader (through the given source)
// and the reference.
func run(kind string, data []byte, lim Limits, buffered bool) (got, want outcome) {
	if kind == "frame" {
		return frameOutcome(ParseFrame(data, lim)), frameOutcome(refParseFrame(data, lim))
	}
	rsrc := bytes.NewReader(data)
	want = readOutcome(newRefReader(rsrc, lim), func() int { return len(data) - rsrc.Len() })
	src := bytes.NewReader(data)
	if !buffered {
		return readOutcome(NewReader(src, lim), func() int { return len(data) - src.Len() }), want
	}
	br := bufio.NewReaderSize(src, 16) // small, to cross buffer boundaries
	return readOutcome(NewReader(br, lim), func() int { return len(data) - src.Len() - br.Buffered() }), want
}

func checkSame(t *testing.T, kind string, data []byte, lim Limits) {
	t.Helper()
	for _, buffered := range []bool{false, true} {
		if kind == "frame" && buffered {
			break
		}
		got, want := run(kind, data, lim, buffered)
		msg := differ(got, want)
		if msg == "" {
			continue
		}
		if fixed := avoidDeliberate(data); !bytes.Equal(fixed, data) {
			checkSame(t, kind, fixed, lim) // differences 1 and 2
			return
		}
		if lim.MaxStanzaBytes > 0 && got.err != nil && want.err != nil && len(got.elems) == len(want.elems) &&
			(errClass(got.err) == "policy-violation" || errClass(want.err) == "policy-violation") {
			lim.MaxStanzaBytes = 0 // difference 4
			checkSame(t, kind, data, lim)
			return
		}
		if nameTablesDiffer(data) { // difference 3
			return
		}
		t.Fatalf("%s (buffered %v, %+v) of %q:\n%s", kind, buffered, lim, data, msg)
	}
}

var surrogateRef = regexp.MustCompile(`&#(x0*[dD][89a-fA-F][0-9a-fA-F][0-9a-fA-F]|0*5[5-7][0-9][0-9][0-9]);`)

// avoidDeliberate rewrites input to avoid differences 1 and 2.
func avoidDeliberate(data []byte) []byte {
	data = surrogateRef.ReplaceAllFunc(data, func(m []byte) []byte {
		if r := parseRef(m); r >= 0xD800 && r <= 0xDFFF {
			return []byte("&#xFFFD;")
		}
		return m
	})
	var out []byte
	for i, c := range data {
		out = append(out, c)
		if (c == '\'' || c == '"') && i+1 < len(data) && (charClass[data[i+1]]&cStart != 0 || data[i+1] >= utf8.RuneSelf) {
			out = append(out, ' ')
		}
	}
	return out
}

func parseRef(m []byte) int64 {
	s := string(m[2 : len(m)-1])
	base := 10
	if s[0] == 'x' {
		s, base = s[1:], 16
	}
	n, err := strconv.ParseInt(s, base, 64)
	if err != nil {
		return -1
	}
	return n
}

// nameTablesDiffer reports whether data has a character that XML 1.0
// fifth edition and encoding/xml classify differently in names.
func nameTablesDiffer(data []byte) bool {
	for _, r := range string(data) {
		if r >= utf8.RuneSelf && r != utf8.RuneError && oldNameClass(r) != [2]bool{isNameStartRune(r), isNameRune(r)} {
			return true
		}
	}
	return false
}

var oldClasses sync.Map // rune → [2]bool

// oldNameClass asks encoding/xml whether r may start a name and whether it
// may be part of one.
func oldNameClass(r rune) [2]bool {
	if c, ok := oldClasses.Load(r); ok {
		return c.([2]bool)
	}
	ok := func(s string) bool {
		_, err := xml.NewDecoder(strings.NewReader("<" + s + "/>")).RawToken()
		return err == nil
	}
	c := [2]bool{ok(string(r)), ok("a" + string(r))}
	oldClasses.Store(r, c)
	return c
}

// TestDeliberateDifferences checks the cases where the reader is stricter
// than the encoding/xml based reader was.
func TestDeliberateDifferences(t *testing.T) {
	tests := []struct {
		name string
		in   string
		cond string // of the new reader; "" if it accepts the input
	}{
		{"surrogate reference in text", "<a>&#xD800;</a>", "not-well-formed"},
		{"surrogate reference in attribute", "<a b='&#57343;'/>", "not-well-formed"},
		{"no space between attributes", "<a b='1'c='2'/>", "not-well-formed"},
		{"name starting with an emoji", "<\U0001F30D/>", ""},
		{"name with U+2070", "<a\u2070/>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readStream(t, clientHeader+tt.in, Limits{})
			if tt.cond == "" && err != io.EOF || tt.cond != "" && condition(err) != tt.cond {
				t.Errorf("error = %v, want condition %q", err, tt.cond)
			}
			r := newRefReader(strings.NewReader(clientHeader+tt.in), Limits{})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Next(); (tt.cond == "") == (err == nil) {
				t.Errorf("the reference reader too: %v", err)
			}
		})
	}
}

// TestSharedStrings checks that the strings of an element share one copy
// of the stanza and that appending to one element's slices leaves the
// others alone.
func TestSharedStrings(t *testing.T) {
	e, err := ParseFrame([]byte("<a x='1' y='2'><b z='3'>t</b><c/>u</a>"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	b := e.First()
	e.SetAttr("w", "4")
	b.Append(New("", "d"))
	if got, want := e.String(), "<a x='1' y='2' w='4'><b z='3'>t<d/></b><c/>u</a>"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are not meaningful in -short or -race runs")
	}
	frame := []byte("<message xmlns='jabber:client'" + chatMessage[len("<message"):])
	if _, err := ParseFrame(frame, Limits{}); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = ParseFrame(frame, Limits{}) })
	if allocs > 4 {
		t.Errorf("ParseFrame of a chat message: %v allocations, want at most 4", allocs)
	}
	stream := []byte(clientHeader + strings.Repeat(chatMessage, 200))
	src := bytes.NewReader(stream)
	br := bufio.NewReaderSize(src, 512)
	r := NewReader(br, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Errorf("Next of a chat message: %v allocations, want at most 4", allocs)
	}
}
