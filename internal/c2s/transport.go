package c2s

import (
	"crypto/tls"
	"net"
	"time"

	"casp3r/internal/stream"
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
	// waitReadable blocks until the client sent something (or the read
	// fails), without parsing or decrypting: the cheap place to sit while
	// idle.
	waitReadable() error
	// canPark reports whether whenReadable may work.
	canPark() bool
	// whenReadable parks the connection on p, with no goroutine waiting,
	// until the client sends something or interrupt or abort is called;
	// then fn runs. False when it cannot be parked: wait in waitReadable.
	whenReadable(p *stream.Poller, fn func()) bool
	// ready reads what can be read without waiting and reports whether
	// next has an element to read (false: only whitespace came, or a part
	// of a TLS record). It may decrypt: call it where next is called.
	ready() (bool, error)
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
	// setReadLimit makes a read that has to wait for the client wait at
	// most d while no deadline is set, and reports whether the transport
	// can (stream.Conn.SetReadLimit).
	setReadLimit(d time.Duration) bool
	// batchDeadline is what the outbound queue calls before each batch
	// (stream.NewQueue's setWriteDeadline): nil when the transport bounds
	// a write that waits itself.
	batchDeadline() func(time.Time) error
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
	*stream.Conn
}

func newTCPTransport(conn net.Conn, lim xmlstream.Limits) *tcpTransport {
	return &tcpTransport{stream.NewConn(conn, lim)}
}

func (t *tcpTransport) readOpen() (xmlstream.Header, error) { return t.ReadHeader() }
func (t *tcpTransport) next() (*xmlstream.Element, error)   { return t.Next() }
func (t *tcpTransport) waitReadable() error                 { return t.WaitReadable() }
func (t *tcpTransport) ready() (bool, error)                { return t.Ready() }
func (t *tcpTransport) canPark() bool                       { return true }
func (t *tcpTransport) whenReadable(p *stream.Poller, fn func()) bool {
	return t.WhenReadable(p, fn)
}

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

func (t *tcpTransport) write(frames [][]byte) error          { return t.Write(frames) }
func (t *tcpTransport) startTLS(cfg *tls.Config) error       { return t.StartTLS(cfg, true) }
func (t *tcpTransport) restart()                             { t.Restart() }
func (t *tcpTransport) setLimits(l xmlstream.Limits)         { t.SetLimits(l) }
func (t *tcpTransport) setReadDeadline(d time.Time) error    { return t.SetReadDeadline(d) }
func (t *tcpTransport) setWriteDeadline(d time.Time) error   { return t.SetWriteDeadline(d) }
func (t *tcpTransport) tlsState() *tls.ConnectionState       { return t.TLSState() }
func (t *tcpTransport) setReadLimit(d time.Duration) bool    { return t.SetReadLimit(d) }
func (t *tcpTransport) batchDeadline() func(time.Time) error { return t.BatchDeadline() }
func (t *tcpTransport) canStartTLS() bool                    { return !t.IsTLS() }
func (t *tcpTransport) remoteAddr() string                   { return t.RemoteAddr() }
func (t *tcpTransport) interrupt()                           { t.Interrupt() }
func (t *tcpTransport) close() error                         { return t.Close() }
func (t *tcpTransport) abort() error                         { return t.Abort() }
