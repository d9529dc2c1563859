package server

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"casp3r/internal/xmlstream"
	"casp3r/internal/xmpptest"
)

// wsClient speaks RFC 7395 framing for tests.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialWS(t *testing.T, s *testServer) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	conn, _, err := websocket.Dial(ctx, "wss://"+s.Addr(ListenerHTTPS).String()+"/xmpp-websocket",
		&websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"xmpp"}})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("ws write: %v", err)
	}
}

func (c *wsClient) next() *xmlstream.Element {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.conn.Read(ctx)
	if err != nil {
		c.t.Fatalf("ws read: %v", err)
	}
	el, err := xmlstream.ParseFrame(data, xmlstream.Limits{})
	if err != nil {
		c.t.Fatalf("frame %q: %v", data, err)
	}
	return el
}

func (c *wsClient) expect(what string, match func(*xmlstream.Element) bool) *xmlstream.Element {
	c.t.Helper()
	for range 50 {
		if el := c.next(); match(el) {
			return el
		}
	}
	c.t.Fatalf("no %s", what)
	return nil
}

func (c *wsClient) open() *xmlstream.Element {
	c.t.Helper()
	c.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='" + testDomain + "' version='1.0'/>")
	if o := c.next(); !o.Is(xmlstream.NSFraming, "open") || o.Get("from") != testDomain {
		c.t.Fatalf("open: %s", o)
	}
	f := c.next()
	if !f.Is(xmlstream.NSStream, "features") {
		c.t.Fatalf("features: %s", f)
	}
	return f
}

func TestWebSocketChat(t *testing.T) {
	s := runServer(t, nil)
	s.addUser("alice", "a")
	s.addUser("bob", "b")
	bob := xmpptest.Login(t, s.addr(), testDomain, "bob", "b", "tcp")
	bob.SendRaw("<presence/>")

	ws := dialWS(t, s)
	f := ws.open()
	if f.Child("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms") == nil {
		t.Fatalf("no mechanisms over websocket: %s", f)
	}
	ws.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00a")) + "</auth>")
	if el := ws.next(); el.Name.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	f = ws.open()
	if f.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind") == nil {
		t.Fatalf("no bind after auth: %s", f)
	}
	ws.send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>")
	if el := ws.expect("bind", byID("b1")); el.Get("type") != "result" {
		t.Fatalf("bind: %s", el)
	}
	ws.send("<presence xmlns='jabber:client'/>")
	ws.send("<message xmlns='jabber:client' to='bob@" + testDomain + "' type='chat'><body>from the browser</body></message>")
	m := bob.Expect("message", isMessage("from the browser"))
	if m.Get("from") != "alice@"+testDomain+"/web" {
		t.Fatalf("from %q", m.Get("from"))
	}
	bob.SendRaw("<message to='alice@" + testDomain + "/web' type='chat'><body>to the browser</body></message>")
	ws.expect("reply", isMessage("to the browser"))
	ws.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	if el := ws.next(); !el.Is(xmlstream.NSFraming, "close") {
		t.Fatalf("close: %s", el)
	}
}

func TestHostMeta(t *testing.T) {
	s := runServer(t, nil)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	base := "https://" + s.Addr(ListenerHTTPS).String()
	resp, err := hc.Get(base + "/.well-known/host-meta.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Links []struct{ Rel, Href string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	want := "wss://" + s.Addr(ListenerHTTPS).String() + "/xmpp-websocket"
	if len(doc.Links) != 1 || doc.Links[0].Rel != "urn:xmpp:alt-connections:websocket" || doc.Links[0].Href != want {
		t.Fatalf("host-meta.json: %+v, want href %s", doc, want)
	}
	resp2, err := hc.Get(base + "/.well-known/host-meta")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	body, _ := io.ReadAll(resp2.Body)
	if !strings.Contains(string(body), "href='"+want+"'") {
		t.Fatalf("host-meta: %s", body)
	}
}
