// Package xmpptest is a small raw XMPP client for tests: it speaks just
// enough RFC 6120 (STARTTLS, SASL PLAIN and SCRAM, bind) to drive a server,
// then sends raw XML and waits for elements matching a predicate.
package xmpptest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"casp3r/internal/xmlstream"
)

// Timeout bounds every wait of the client.
const Timeout = 10 * time.Second

// Client is one raw client connection.
type Client struct {
	t        testing.TB
	conn     net.Conn
	br       *bufio.Reader
	r        *xmlstream.Reader
	Domain   string
	JID      string // full JID once bound
	Features *xmlstream.Element
	Header   xmlstream.Header
}

// Dial connects to addr and opens a stream to domain, reading the features.
func Dial(t testing.TB, addr, domain string) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := &Client{t: t, conn: conn, Domain: domain}
	t.Cleanup(func() { _ = c.conn.Close() })
	c.reset()
	c.Open()
	return c
}

// DialTLS connects with direct TLS (XEP-0368).
func DialTLS(t testing.TB, addr, domain string) *Client {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: Timeout}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, ServerName: domain, NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatalf("dial tls %s: %v", addr, err)
	}
	c := &Client{t: t, conn: conn, Domain: domain}
	t.Cleanup(func() { _ = c.conn.Close() })
	c.reset()
	c.Open()
	return c
}

func (c *Client) reset() {
	c.br = bufio.NewReader(c.conn)
	c.r = xmlstream.NewReader(c.br, xmlstream.Limits{})
}

// Open sends a stream header and reads the server's header and features.
func (c *Client) Open() {
	c.t.Helper()
	c.SendRaw("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + c.Domain + "' version='1.0' xml:lang='en'>")
	_ = c.conn.SetReadDeadline(time.Now().Add(Timeout))
	h, err := c.r.ReadHeader()
	if err != nil {
		c.t.Fatalf("read stream header: %v", err)
	}
	c.Header = h
	c.Features = c.Next()
	if !c.Features.Is(xmlstream.NSStream, "features") {
		c.t.Fatalf("expected features, got %s", c.Features)
	}
}

// SendRaw writes s as is.
func (c *Client) SendRaw(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Send writes an element.
func (c *Client) Send(el *xmlstream.Element) {
	c.SendRaw(string(xmlstream.AppendXML(nil, el, xmlstream.NSClient)))
}

// Read returns the next element or the error that ended the stream.
func (c *Client) Read() (*xmlstream.Element, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(Timeout))
	return c.r.Next()
}

// Next returns the next element and fails the test on error.
func (c *Client) Next() *xmlstream.Element {
	c.t.Helper()
	el, err := c.Read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return el
}

// Expect reads until an element satisfies match, failing after Timeout.
func (c *Client) Expect(what string, match func(*xmlstream.Element) bool) *xmlstream.Element {
	c.t.Helper()
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		el, err := c.Read()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(el) {
			return el
		}
	}
	c.t.Fatalf("timed out waiting for %s", what)
	return nil
}

// ExpectStreamError reads until the stream ends and returns the stream
// error condition that came before the end ("" if none).
func (c *Client) ExpectStreamError() string {
	c.t.Helper()
	cond := ""
	for {
		el, err := c.Read()
		if err != nil {
			return cond
		}
		if el.Is(xmlstream.NSStream, "error") {
			if f := el.First(); f != nil {
				cond = f.Name.Local
			}
		}
	}
}

// StartTLS negotiates STARTTLS and reopens the stream.
func (c *Client) StartTLS() {
	c.t.Helper()
	c.SendRaw("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if el := c.Next(); el.Name.Local != "proceed" {
		c.t.Fatalf("starttls: got %s", el)
	}
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, ServerName: c.Domain})
	_ = tc.SetDeadline(time.Now().Add(Timeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("tls handshake: %v", err)
	}
	c.conn = tc
	c.reset()
	c.Open()
}

// TLSState returns the connection's TLS state (nil before TLS).
func (c *Client) TLSState() *tls.ConnectionState {
	if tc, ok := c.conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		return &cs
	}
	return nil
}

// Mechanisms lists the offered SASL mechanisms.
func (c *Client) Mechanisms() []string {
	var out []string
	for _, m := range c.Features.Child("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms").Children() {
		out = append(out, m.Text())
	}
	return out
}

const nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"

// AuthPlain authenticates with PLAIN; it returns the failure condition or
// "" on success (after which the stream is reopened).
func (c *Client) AuthPlain(user, password string) string {
	c.t.Helper()
	data := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	c.SendRaw("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + data + "</auth>")
	return c.saslResult(nil)
}

// AuthSCRAM authenticates with a SCRAM mechanism (with -PLUS, binding the
// channel with cbType); it returns the failure condition or "".
func (c *Client) AuthSCRAM(mech, user, password, cbType string) string {
	c.t.Helper()
	hash := scram.SHA1
	if strings.HasPrefix(mech, "SCRAM-SHA-256") {
		hash = scram.SHA256
	}
	client, err := hash.NewClient(user, password, "")
	if err != nil {
		c.t.Fatalf("scram client: %v", err)
	}
	var conv *scram.ClientConversation
	if strings.HasSuffix(mech, "-PLUS") {
		var cb scram.ChannelBinding
		switch cbType {
		case "tls-exporter":
			cb, err = scram.NewTLSExporterBinding(c.TLSState())
		case "tls-server-end-point":
			cb, err = scram.NewTLSServerEndpointBinding(c.TLSState())
		default:
			err = fmt.Errorf("unknown binding %q", cbType)
		}
		if err != nil {
			c.t.Fatalf("channel binding: %v", err)
		}
		conv = client.NewConversationWithChannelBinding(cb)
	} else {
		conv = client.NewConversation()
	}
	first, err := conv.Step("")
	if err != nil {
		c.t.Fatalf("scram first: %v", err)
	}
	c.SendRaw("<auth xmlns='" + nsSASL + "' mechanism='" + mech + "'>" + base64.StdEncoding.EncodeToString([]byte(first)) + "</auth>")
	return c.saslResult(conv)
}

func (c *Client) saslResult(conv *scram.ClientConversation) string {
	c.t.Helper()
	for {
		el := c.Next()
		switch el.Name.Local {
		case "failure":
			if f := el.First(); f != nil {
				return f.Name.Local
			}
			return "failure"
		case "challenge":
			in, _ := base64.StdEncoding.DecodeString(el.Text())
			out, err := conv.Step(string(in))
			if err != nil {
				c.t.Fatalf("scram step: %v", err)
			}
			c.SendRaw("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString([]byte(out)) + "</response>")
		case "success":
			if conv != nil {
				in, _ := base64.StdEncoding.DecodeString(el.Text())
				if _, err := conv.Step(string(in)); err != nil || !conv.Valid() {
					c.t.Fatalf("server signature not valid: %v", err)
				}
			}
			c.r.Reset()
			c.Open()
			return ""
		default:
			c.t.Fatalf("unexpected during sasl: %s", el)
		}
	}
}

// Bind binds resource ("" lets the server choose) and returns the full JID.
func (c *Client) Bind(resource string) string {
	c.t.Helper()
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	c.SendRaw("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + res + "</bind></iq>")
	el := c.Expect("bind result", func(e *xmlstream.Element) bool { return e.Get("id") == "bind1" })
	if el.Get("type") != "result" {
		c.t.Fatalf("bind failed: %s", el)
	}
	c.JID = el.Child("", "bind").Child("", "jid").Text()
	if c.JID == "" {
		c.t.Fatalf("bind result without jid: %s", el)
	}
	return c.JID
}

// Login dials, negotiates STARTTLS, authenticates with SCRAM-SHA-256 and
// binds resource.
func Login(t testing.TB, addr, domain, user, password, resource string) *Client {
	t.Helper()
	c := Dial(t, addr, domain)
	c.StartTLS()
	if f := c.AuthSCRAM("SCRAM-SHA-256", user, password, ""); f != "" {
		t.Fatalf("login %s: %s", user, f)
	}
	c.Bind(resource)
	return c
}

// Close ends the stream and waits for the server's close.
func (c *Client) Close() {
	c.SendRaw("</stream:stream>")
	for {
		if _, err := c.Read(); err != nil {
			if !errors.Is(err, xmlstream.ErrClosed) {
				c.t.Logf("close: %v", err)
			}
			break
		}
	}
	_ = c.conn.Close()
}

// Conn returns the underlying connection (to cut it abruptly).
func (c *Client) Conn() net.Conn { return c.conn }

// DialRaw connects without opening a stream.
func DialRaw(t testing.TB, addr, domain string) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := &Client{t: t, conn: conn, Domain: domain}
	t.Cleanup(func() { _ = c.conn.Close() })
	c.reset()
	return c
}

// ExpectStreamErrorAfterHeader reads the server's stream header, then
// returns the stream error condition before the stream ends.
func (c *Client) ExpectStreamErrorAfterHeader() string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(Timeout))
	if _, err := c.r.ReadHeader(); err != nil {
		c.t.Fatalf("read server header: %v", err)
	}
	return c.ExpectStreamError()
}

// ReadServerHeader reads the peer's stream header (for raw streams).
func (c *Client) ReadServerHeader() xmlstream.Header {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(Timeout))
	h, err := c.r.ReadHeader()
	if err != nil {
		c.t.Fatalf("read stream header: %v", err)
	}
	c.Header = h
	return h
}

// StartTLSServerStream negotiates STARTTLS on a raw stream and reopens it
// with header, reading the new header and features.
func (c *Client) StartTLSServerStream(header string) {
	c.t.Helper()
	c.SendRaw("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if el := c.Next(); el.Name.Local != "proceed" {
		c.t.Fatalf("starttls: got %s", el)
	}
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, ServerName: c.Domain})
	_ = tc.SetDeadline(time.Now().Add(Timeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("tls handshake: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	c.conn = tc
	c.reset()
	c.SendRaw(header)
	c.ReadServerHeader()
	c.Features = c.Next()
}
