package c2s

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"casp3r/internal/xmlstream"
)

// transport is one client connection's framing: XML over TCP (with stream
// headers and STARTTLS) or XMPP over WebSocket (RFC 7395 open/close frames).
type transport interface {
	// readOpen reads the stream header (TCP) or <open/> frame (WebSocket).
	readOpen() (xmlstream.Header, error)
	// next reads the next top-level element; xmlstream.ErrClosed when the
	// client closed the stream.
	next() (*xmlstream.Element, error)
	// openBytes returns what opens our side of the stream.
	openBytes(id, domain, lang string) []byte
	// closeBytes returns what closes our side of the stream.
	closeBytes() []byte
	// encode appends the encoding of one top-level element.
	encode(b []byte, el *xmlstream.Element) []byte
	// write sends encoded elements; frames holds one entry per element (for
	// WebSocket, one frame each).
	write(frames [][]byte) error
	// startTLS upgrades the connection (TCP only).
	startTLS(cfg *tls.Config) error
	// restart prepares for a new stream header after SASL success.
	restart()
	setLimits(l xmlstream.Limits)
	setReadDeadline(t time.Time) error
	setWriteDeadline(t time.Time) error
	tlsState() *tls.ConnectionState
	canStartTLS() bool
	remoteAddr() string
	// interrupt wakes a reader blocked in next or readOpen; the reader then
	// ends the session.
	interrupt()
	// close closes the connection, gently: after our side is written, it
	// reads and drops what the client still sends for a moment, so that
	// the client sees our last words instead of a connection reset.
	close() error
	// abort closes the connection at once.
	abort() error
}

// tcpTransport is XML streamed over a TCP (or TLS) connection.
type tcpTransport struct {
	conn   net.Conn
	br     *bufio.Reader
	r      *xmlstream.Reader
	limits xmlstream.Limits
	tls    *tls.Conn
}

const readBufSize = 2048

var errInjected = errors.New("plaintext before the tls handshake")

func newTCPTransport(conn net.Conn, lim xmlstream.Limits) *tcpTransport {
	t := &tcpTransport{conn: conn, limits: lim}
	if tc, ok := conn.(*tls.Conn); ok {
		t.tls = tc
	}
	t.br = bufio.NewReaderSize(conn, readBufSize)
	t.r = xmlstream.NewReader(t.br, lim)
	return t
}

func (t *tcpTransport) readOpen() (xmlstream.Header, error) { return t.r.ReadHeader() }
func (t *tcpTransport) next() (*xmlstream.Element, error)   { return t.r.Next() }

func (t *tcpTransport) openBytes(id, domain, lang string) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='"+xmlstream.NSClient+
		"' xmlns:stream='"+xmlstream.NSStream+"' version='1.0' from='"...)
	b = append(b, domain...)
	b = append(b, "' id='"...)
	b = append(b, id...)
	b = append(b, "' xml:lang='"...)
	b = append(b, lang...)
	return append(b, "'>"...)
}

func (t *tcpTransport) closeBytes() []byte { return []byte("</stream:stream>") }

func (t *tcpTransport) encode(b []byte, el *xmlstream.Element) []byte {
	return xmlstream.AppendXML(b, el, xmlstream.NSClient)
}

func (t *tcpTransport) write(frames [][]byte) error {
	if len(frames) == 1 {
		_, err := t.conn.Write(frames[0])
		return err
	}
	bufs := net.Buffers(frames)
	_, err := bufs.WriteTo(t.conn)
	return err
}

func (t *tcpTransport) startTLS(cfg *tls.Config) error {
	if t.tls != nil {
		return fmt.Errorf("tls already on")
	}
	// Whitespace after <starttls/> is harmless (go-sendxmpp sends a
	// newline); anything else before the handshake would be plaintext
	// injected into the secure stream (CVE-2011-1431 class).
	for t.br.Buffered() > 0 {
		c, _ := t.br.ReadByte()
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return fmt.Errorf("data after starttls: %w", errInjected)
		}
	}
	tc := tls.Server(t.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	t.tls = tc
	t.conn = tc
	t.br.Reset(tc)
	t.r = xmlstream.NewReader(t.br, t.limits)
	return nil
}

func (t *tcpTransport) restart() { t.r.Reset() }

func (t *tcpTransport) setLimits(l xmlstream.Limits) {
	t.limits = l
	t.r.SetLimits(l)
}

func (t *tcpTransport) setReadDeadline(d time.Time) error  { return t.conn.SetReadDeadline(d) }
func (t *tcpTransport) setWriteDeadline(d time.Time) error { return t.conn.SetWriteDeadline(d) }

func (t *tcpTransport) tlsState() *tls.ConnectionState {
	if t.tls == nil {
		return nil
	}
	cs := t.tls.ConnectionState()
	return &cs
}

func (t *tcpTransport) canStartTLS() bool  { return t.tls == nil }
func (t *tcpTransport) remoteAddr() string { return t.conn.RemoteAddr().String() }
func (t *tcpTransport) interrupt()         { _ = t.conn.SetReadDeadline(time.Now()) }
func (t *tcpTransport) abort() error       { return t.conn.Close() }

// lingerBytes and lingerTime bound what close drains from a client that
// keeps sending.
const (
	lingerBytes = 256 << 10
	lingerTime  = time.Second
)

func (t *tcpTransport) close() error {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := t.conn.(closeWriter); ok {
		if err := cw.CloseWrite(); err == nil {
			_ = t.conn.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.CopyN(io.Discard, t.br, lingerBytes)
		}
	}
	return t.conn.Close()
}
