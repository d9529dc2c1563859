//go:build integration

package interop

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// rawClient is a minimal XMPP client (RFC 6120): STARTTLS, SASL PLAIN and
// resource binding, then raw stanzas. It depends on nothing but the standard
// library, so the tests that use it run everywhere.
type rawClient struct {
	conn    net.Conn
	dec     *xml.Decoder
	timeout time.Duration // per read or write
	jid     string        // full JID after bind
	queue   []stanza      // stanzas read while waiting for something else
	nextID  int
}

// stanza is any top-level element of the stream.
type stanza struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Body    string     `xml:"body"`
	Inner   string     `xml:",innerxml"`
}

func (s stanza) attr(name string) string {
	for _, a := range s.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (s stanza) String() string {
	var b strings.Builder
	b.WriteString("<" + s.XMLName.Local)
	for _, a := range s.Attrs {
		fmt.Fprintf(&b, " %s=%q", a.Name.Local, a.Value)
	}
	return b.String() + ">" + s.Inner + "</" + s.XMLName.Local + ">"
}

const (
	nsTLS  = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind = "urn:ietf:params:xml:ns:xmpp-bind"
)

// features is the part of <stream:features/> the raw client looks at.
type features struct {
	StartTLS   *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms []string  `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
	Bind       *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
}

// dialRaw connects to host:port, negotiates STARTTLS (certificate not
// verified), authenticates local@domain with PLAIN and binds a resource.
func dialRaw(host string, port int, domain, local, password string, timeout time.Duration) (*rawClient, error) {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), timeout)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := &rawClient{conn: conn, timeout: timeout}
	if err := c.login(domain, local, password); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *rawClient) login(domain, local, password string) error {
	f, err := c.openStream(domain)
	if err != nil {
		return err
	}
	if f.StartTLS == nil {
		return errors.New("server does not offer STARTTLS")
	}
	if err := c.write(`<starttls xmlns='` + nsTLS + `'/>`); err != nil {
		return err
	}
	if el, err := c.read(); err != nil {
		return fmt.Errorf("starttls: %w", err)
	} else if el.XMLName.Local != "proceed" {
		return fmt.Errorf("starttls: got %v, want <proceed/>", el)
	}
	tconn := tls.Client(c.conn, &tls.Config{ServerName: domain, InsecureSkipVerify: true})
	tconn.SetDeadline(time.Now().Add(c.timeout))
	if err := tconn.Handshake(); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	c.conn = tconn
	if f, err = c.openStream(domain); err != nil {
		return err
	}
	if !slices.Contains(f.Mechanisms, "PLAIN") {
		return fmt.Errorf("server offers SASL %v over TLS, no PLAIN", f.Mechanisms)
	}
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + local + "\x00" + password))
	if err := c.write(`<auth xmlns='` + nsSASL + `' mechanism='PLAIN'>` + creds + `</auth>`); err != nil {
		return err
	}
	if el, err := c.read(); err != nil {
		return fmt.Errorf("sasl: %w", err)
	} else if el.XMLName.Local != "success" {
		return fmt.Errorf("sasl plain as %s: got %v, want <success/>", local, el)
	}
	if f, err = c.openStream(domain); err != nil {
		return err
	}
	if f.Bind == nil {
		return errors.New("server does not offer resource binding after auth")
	}
	res, err := c.iq(`<iq type='set' id='bind1'><bind xmlns='` + nsBind + `'><resource>raw</resource></bind></iq>`)
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	var b struct {
		JID string `xml:"bind>jid"`
	}
	if err := xml.Unmarshal([]byte("<x>"+res.Inner+"</x>"), &b); err != nil || b.JID == "" {
		return fmt.Errorf("bind: no jid in %v", res)
	}
	c.jid = b.JID
	return nil
}

// openStream sends a stream header and reads the server's header and features.
func (c *rawClient) openStream(domain string) (features, error) {
	var f features
	c.dec = xml.NewDecoder(c.conn)
	if err := c.write(`<?xml version='1.0'?><stream:stream to='` + domain +
		`' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`); err != nil {
		return f, err
	}
	c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return f, fmt.Errorf("read stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return f, fmt.Errorf("got <%s>, want a stream header", se.Name.Local)
			}
			break
		}
	}
	el, err := c.read()
	if err != nil {
		return f, fmt.Errorf("read features: %w", err)
	}
	if el.XMLName.Local != "features" {
		return f, fmt.Errorf("got %v, want <stream:features/>", el)
	}
	if err := xml.Unmarshal([]byte("<features>"+el.Inner+"</features>"), &f); err != nil {
		return f, fmt.Errorf("parse features: %w", err)
	}
	return f, nil
}

func (c *rawClient) write(s string) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := io.WriteString(c.conn, s); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// read returns the next top-level element of the stream.
func (c *rawClient) read() (stanza, error) {
	var el stanza
	c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return el, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := c.dec.DecodeElement(&el, &t); err != nil {
				return el, err
			}
			if el.XMLName.Local == "error" && el.XMLName.Space == "http://etherx.jabber.org/streams" {
				return el, fmt.Errorf("stream error: %s", el.Inner)
			}
			return el, nil
		case xml.EndElement:
			return el, errors.New("server closed the stream")
		}
	}
}

// next returns a queued stanza that match accepts, or reads until one arrives.
func (c *rawClient) next(match func(stanza) bool) (stanza, error) {
	for i, el := range c.queue {
		if match(el) {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			return el, nil
		}
	}
	for {
		el, err := c.read()
		if err != nil {
			return el, err
		}
		if match(el) {
			return el, nil
		}
		c.queue = append(c.queue, el)
	}
}

// iq sends an iq (which must carry an id) and returns its result.
func (c *rawClient) iq(raw string) (stanza, error) {
	var id struct {
		ID string `xml:"id,attr"`
	}
	if err := xml.Unmarshal([]byte(raw), &id); err != nil || id.ID == "" {
		return stanza{}, fmt.Errorf("iq without id: %s", raw)
	}
	if err := c.write(raw); err != nil {
		return stanza{}, err
	}
	el, err := c.next(func(s stanza) bool { return s.XMLName.Local == "iq" && s.attr("id") == id.ID })
	if err != nil {
		return el, err
	}
	if typ := el.attr("type"); typ != "result" {
		return el, fmt.Errorf("iq %s: got type %q: %v", id.ID, typ, el)
	}
	return el, nil
}

// ping sends an XEP-0199 ping to the server and waits for the result.
func (c *rawClient) ping(domain string) error {
	c.nextID++
	_, err := c.iq(fmt.Sprintf(`<iq type='get' id='ping%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, c.nextID, domain))
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// message sends a chat message.
func (c *rawClient) message(to, body string) error {
	var b strings.Builder
	xml.EscapeText(&b, []byte(body))
	c.nextID++
	return c.write(fmt.Sprintf(`<message type='chat' id='m%d' to='%s'><body>%s</body></message>`, c.nextID, to, b.String()))
}

// waitMessage waits for a message with the given body.
func (c *rawClient) waitMessage(body string) (stanza, error) {
	return c.next(func(s stanza) bool { return s.XMLName.Local == "message" && s.Body == body })
}

// close ends the stream and the connection.
func (c *rawClient) close() {
	c.write(`</stream:stream>`)
	c.conn.Close()
}
