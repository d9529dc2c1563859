package server

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"casp3r/internal/xmlstream"
	"casp3r/internal/xmpptest"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/")

// transcript records what a client sent and what it got, one element a
// line, for comparison with a golden file.
type transcript struct {
	t     *testing.T
	c     *xmpptest.Client
	lines []string
}

func (tr *transcript) send(s string) {
	tr.lines = append(tr.lines, "C: "+s)
	tr.c.SendRaw(s)
}

func (tr *transcript) recv() *xmlstream.Element {
	tr.t.Helper()
	el := tr.c.Next()
	tr.lines = append(tr.lines, "S: "+string(xmlstream.AppendXML(nil, el, xmlstream.NSClient)))
	return el
}

func (tr *transcript) note(s string) { tr.lines = append(tr.lines, "-- "+s) }

func checkGolden(t *testing.T, name string, lines []string) {
	t.Helper()
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("transcript differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestGoldenSession records a whole client session: features before and
// after TLS and SASL, bind, roster, presence, a message to an offline
// contact, ping and close.
func TestGoldenSession(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "secret")
	s.addUser("bob", "secret")
	c := xmpptest.DialRaw(t, s.addr(), testDomain)
	tr := &transcript{t: t, c: c}
	c.Open()
	tr.note("stream opened; features before TLS:")
	tr.lines = append(tr.lines, "S: "+string(xmlstream.AppendXML(nil, c.Features, xmlstream.NSClient)))
	c.StartTLS()
	tr.note("TLS on; features:")
	tr.lines = append(tr.lines, "S: "+string(xmlstream.AppendXML(nil, c.Features, xmlstream.NSClient)))
	if f := c.AuthPlain("alice", "secret"); f != "" {
		t.Fatal(f)
	}
	tr.note("authenticated; features:")
	tr.lines = append(tr.lines, "S: "+string(xmlstream.AppendXML(nil, c.Features, xmlstream.NSClient)))
	tr.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>pc</resource></bind></iq>")
	tr.recv()
	tr.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
	tr.recv()
	tr.send("<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='bob@casp3r.test' name='Bob'><group>Friends</group></item></query></iq>")
	tr.recv() // push
	tr.recv() // result
	tr.send("<presence><priority>1</priority></presence>")
	tr.recv() // own presence, reflected (RFC 6121 §4.2.2)
	tr.send("<presence to='bob@casp3r.test' type='subscribe'/>")
	tr.recv() // push with ask
	tr.send("<message to='bob@casp3r.test' type='chat' id='m1'><body>hi</body></message>")
	tr.send("<message to='nobody@casp3r.test' type='chat' id='m2'><body>hi</body></message>")
	tr.recv() // service-unavailable
	tr.send("<iq type='get' id='p1' to='casp3r.test'><ping xmlns='urn:xmpp:ping'/></iq>")
	tr.recv()
	tr.send("</stream:stream>")
	if el, err := c.Read(); err == nil {
		t.Fatalf("stream still open after close: got %s", el)
	}
	tr.note("server closed the stream")
	checkGolden(t, "session.golden", tr.lines)
}
