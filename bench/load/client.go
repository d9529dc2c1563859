package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/xdg-go/scram"

	"casp3r/internal/xmlstream"
)

// Namespaces the client speaks (RFC 6120, XEP-0077).
const (
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsRegister = "jabber:iq:register"
)

// stepTimeout bounds every single read or write of a client; the overall
// -timeout bounds them all together.
const stepTimeout = 30 * time.Second

// client is one raw XMPP client connection: just enough RFC 6120 to log
// in (STARTTLS, optional XEP-0077 registration, SASL, bind), then raw
// stanzas. One goroutine reads; writes are serialized by wmu.
type client struct {
	ctx    context.Context // the run's overall deadline
	conn   net.Conn        // the TCP connection, then TLS over it
	raw    net.Conn        // the TCP connection: stamped (see stampConn) where possible
	r      *xmlstream.Reader
	domain string
	feats  *xmlstream.Element
	jid    string // full JID once bound

	wmu sync.Mutex
}

// deadline is stepTimeout from now, or the run's deadline if sooner.
func (c *client) deadline() time.Time {
	d := time.Now().Add(stepTimeout)
	if cd, ok := c.ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// dial connects to addr and opens a stream to domain.
func dial(ctx context.Context, addr, domain string) (*client, error) {
	d := net.Dialer{Timeout: stepTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	conn = stamped(conn)
	c := &client{ctx: ctx, conn: conn, raw: conn, domain: domain}
	c.r = xmlstream.NewReader(bufio.NewReaderSize(conn, 4096), xmlstream.Limits{})
	if err := c.open(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

// open sends our stream header, then reads the server's and its features.
func (c *client) open() error {
	if err := c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + c.domain + "' version='1.0' xml:lang='en'>"); err != nil {
		return err
	}
	_ = c.conn.SetReadDeadline(c.deadline())
	if _, err := c.r.ReadHeader(); err != nil {
		return fmt.Errorf("read stream header: %w", err)
	}
	f, err := c.next()
	if err != nil {
		return fmt.Errorf("read features: %w", err)
	}
	if !f.Is(xmlstream.NSStream, "features") {
		return fmt.Errorf("expected features, got %s", short(f))
	}
	c.feats = f
	return nil
}

// send writes s as is.
func (c *client) send(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(c.deadline())
	if _, err := c.conn.Write([]byte(s)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// next reads the next element within one step.
func (c *client) next() (*xmlstream.Element, error) {
	_ = c.conn.SetReadDeadline(c.deadline())
	return c.r.Next()
}

// expect reads until an element with the given id arrives.
func (c *client) expectID(id string) (*xmlstream.Element, error) {
	for range 100 { // skip a bounded number of unrelated stanzas
		el, err := c.next()
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", id, err)
		}
		if el.Get("id") == id {
			return el, nil
		}
	}
	return nil, fmt.Errorf("waiting for %s: too many other stanzas", id)
}

func (c *client) startTLS(x25519Only bool) error {
	if c.feats.Child(nsTLS, "starttls") == nil {
		return fmt.Errorf("server offers no starttls")
	}
	if err := c.send("<starttls xmlns='" + nsTLS + "'/>"); err != nil {
		return err
	}
	el, err := c.next()
	if err != nil {
		return fmt.Errorf("starttls: %w", err)
	}
	if !el.Is(nsTLS, "proceed") {
		return fmt.Errorf("starttls: got %s", short(el))
	}
	conf := &tls.Config{InsecureSkipVerify: true, ServerName: c.domain}
	if x25519Only {
		conf.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	tc := tls.Client(c.conn, conf)
	_ = tc.SetDeadline(c.deadline())
	if err := tc.HandshakeContext(c.ctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	c.conn = tc
	c.r = xmlstream.NewReader(bufio.NewReaderSize(tc, 4096), xmlstream.Limits{})
	return c.open()
}

// register creates user in-band (XEP-0077 §3.1). It reports whether the
// account was new; an existing account (conflict) is not an error.
func (c *client) register(user, password string) (bool, error) {
	if err := c.send("<iq type='set' id='reg1'><query xmlns='" + nsRegister + "'><username>" +
		escape(user) + "</username><password>" + escape(password) + "</password></query></iq>"); err != nil {
		return false, err
	}
	el, err := c.expectID("reg1")
	if err != nil {
		return false, fmt.Errorf("register: %w", err)
	}
	switch el.Get("type") {
	case "result":
		return true, nil
	case "error":
		if e := el.Child("", "error"); e != nil && e.First() != nil && e.First().Name.Local == "conflict" {
			return false, nil
		}
	}
	return false, fmt.Errorf("register: %s", short(el))
}

// scramHash returns the hash of a SCRAM mechanism; false for another.
func scramHash(mech string) (scram.HashGeneratorFcn, bool) {
	switch mech {
	case "SCRAM-SHA-1":
		return scram.SHA1, true
	case "SCRAM-SHA-256":
		return scram.SHA256, true
	}
	return nil, false
}

// auth authenticates with PLAIN or a SCRAM mechanism (without channel
// binding), then restarts the stream. keys, if not nil, is the user's SCRAM
// client from an earlier login: it keeps the keys derived for the salt and
// iteration count the server gave then, and derives them again only if
// they changed.
func (c *client) auth(mech, user, password string, keys *scram.Client) error {
	var conv *scram.ClientConversation
	var first string
	switch mech {
	case "PLAIN":
		first = "\x00" + user + "\x00" + password
	case "SCRAM-SHA-1", "SCRAM-SHA-256":
		hash, _ := scramHash(mech)
		sc, err := keys, error(nil)
		if sc == nil {
			if sc, err = hash.NewClient(user, password, ""); err != nil {
				return fmt.Errorf("scram client: %w", err)
			}
		}
		conv = sc.NewConversation()
		if first, err = conv.Step(""); err != nil {
			return fmt.Errorf("scram first: %w", err)
		}
	default:
		return fmt.Errorf("unknown mechanism %q", mech)
	}
	if err := c.send("<auth xmlns='" + nsSASL + "' mechanism='" + mech + "'>" +
		base64.StdEncoding.EncodeToString([]byte(first)) + "</auth>"); err != nil {
		return err
	}
	for range 4 { // SCRAM: challenge, then success
		el, err := c.next()
		if err != nil {
			return fmt.Errorf("sasl: %w", err)
		}
		switch el.Name.Local {
		case "challenge":
			if conv == nil {
				return fmt.Errorf("sasl: unexpected challenge")
			}
			in, _ := base64.StdEncoding.DecodeString(el.Text())
			out, err := conv.Step(string(in))
			if err != nil {
				return fmt.Errorf("scram step: %w", err)
			}
			if err := c.send("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString([]byte(out)) + "</response>"); err != nil {
				return err
			}
		case "success":
			if conv != nil {
				in, _ := base64.StdEncoding.DecodeString(el.Text())
				if _, err := conv.Step(string(in)); err != nil || !conv.Valid() {
					return fmt.Errorf("sasl: server signature not valid")
				}
			}
			c.r.Reset()
			return c.open()
		case "failure":
			cond := "failure"
			if f := el.First(); f != nil {
				cond = f.Name.Local
			}
			return fmt.Errorf("sasl %s: %s", mech, cond)
		default:
			return fmt.Errorf("sasl: unexpected %s", short(el))
		}
	}
	return fmt.Errorf("sasl: too many steps")
}

// bind binds a server-chosen resource.
func (c *client) bind() error {
	if err := c.send("<iq type='set' id='bind1'><bind xmlns='" + nsBind + "'/></iq>"); err != nil {
		return err
	}
	el, err := c.expectID("bind1")
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	c.jid = el.Child(nsBind, "bind").Child(nsBind, "jid").Text()
	if el.Get("type") != "result" || c.jid == "" {
		return fmt.Errorf("bind: %s", short(el))
	}
	return nil
}

// presence sends initial presence and waits until the server echoes it
// back (RFC 6121 §4.2.2): from then on the resource gets messages sent to
// its bare JID.
func (c *client) presence() error {
	if err := c.send("<presence/>"); err != nil {
		return err
	}
	for range 100 {
		el, err := c.next()
		if err != nil {
			return fmt.Errorf("initial presence: %w", err)
		}
		if el.Name.Local == "presence" && el.Get("from") == c.jid {
			if el.Get("type") == "error" {
				return fmt.Errorf("initial presence: %s", short(el))
			}
			return nil
		}
	}
	return fmt.Errorf("initial presence: no echo")
}

// login runs the whole negotiation for user on a new connection to addr;
// keys, if not nil, is the user's SCRAM client (see auth).
func login(ctx context.Context, o *options, addr, user string, keys *scram.Client) (c *client, created bool, err error) {
	c, err = dial(ctx, addr, o.domain)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if err != nil {
			_ = c.conn.Close()
			c = nil
		}
	}()
	if err = c.startTLS(o.x25519); err != nil {
		return
	}
	if o.register {
		if created, err = c.register(user, o.password); err != nil {
			return
		}
	}
	if err = c.auth(o.mech, user, o.password, keys); err != nil {
		return
	}
	if err = c.bind(); err != nil {
		return
	}
	if o.presence {
		err = c.presence()
	}
	return
}

// closeStream sends the closing tag; the reader sees the server's close.
func (c *client) closeStream() { _ = c.send("</stream:stream>") }

func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// short renders el for an error message, cut to a readable length.
func short(el *xmlstream.Element) string {
	s := el.String()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
