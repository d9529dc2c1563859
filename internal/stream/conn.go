package stream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"casp3r/internal/xmlstream"
)

// Conn is an XML stream over a TCP connection, before and after TLS: one
// reader of top-level elements, batched writes, STARTTLS on either side
// and a gentle close.
type Conn struct {
	raw    net.Conn // the TCP connection, never replaced: safe from any goroutine
	conn   net.Conn // raw, or the TLS connection over it
	br     *bufio.Reader
	r      *xmlstream.Reader
	limits xmlstream.Limits
	tls    *tls.Conn
}

// readBufSize is the read buffer of a connection: small, since every idle
// connection holds one.
const readBufSize = 512

// ErrInjected reports bytes other than whitespace between <starttls/> and
// the TLS handshake: plaintext that would be taken as part of the secure
// stream (the CVE-2011-1431 class of bugs).
var ErrInjected = errors.New("plaintext before the tls handshake")

// NewConn wraps c (already TLS for direct TLS) with limits for reading.
func NewConn(c net.Conn, lim xmlstream.Limits) *Conn {
	s := &Conn{raw: c, conn: c, limits: lim}
	if tc, ok := c.(*tls.Conn); ok {
		s.tls = tc
	}
	s.br = bufio.NewReaderSize(c, readBufSize)
	s.r = xmlstream.NewReader(s.br, lim)
	return s
}

// ReadHeader reads the peer's stream header.
func (s *Conn) ReadHeader() (xmlstream.Header, error) { return s.r.ReadHeader() }

// WaitReadable blocks until at least one byte can be read (or reading
// fails). Whitespace keepalives are consumed here, so that an idle
// connection waits with no parser on its stack.
func (s *Conn) WaitReadable() error {
	for {
		b, err := s.br.Peek(1)
		if err != nil {
			return err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = s.br.ReadByte()
		default:
			return nil
		}
	}
}

// Next reads the next top-level element.
func (s *Conn) Next() (*xmlstream.Element, error) { return s.r.Next() }

// Write writes frames in one batch.
func (s *Conn) Write(frames [][]byte) error {
	if len(frames) == 1 {
		_, err := s.conn.Write(frames[0])
		return err
	}
	bufs := net.Buffers(frames)
	_, err := bufs.WriteTo(s.conn)
	return err
}

// StartTLS upgrades the connection after <proceed/>: as the server when
// server is true, else as the client. Whitespace the peer sent after
// <starttls/> is dropped; anything else is ErrInjected.
func (s *Conn) StartTLS(cfg *tls.Config, server bool) error {
	if s.tls != nil {
		return fmt.Errorf("tls already on")
	}
	for s.br.Buffered() > 0 {
		c, _ := s.br.ReadByte()
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return fmt.Errorf("data after starttls: %w", ErrInjected)
		}
	}
	var tc *tls.Conn
	if server {
		tc = tls.Server(s.conn, cfg)
	} else {
		tc = tls.Client(s.conn, cfg)
	}
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	s.tls = tc
	s.conn = tc
	s.br.Reset(tc)
	s.r = xmlstream.NewReader(s.br, s.limits)
	return nil
}

// Handshake completes the TLS handshake of a direct TLS connection now
// (it would otherwise happen on the first read), giving up when ctx ends.
func (s *Conn) Handshake(ctx context.Context) error {
	if s.tls == nil {
		return nil
	}
	return s.tls.HandshakeContext(ctx)
}

// Restart prepares for a new stream header (after SASL success).
func (s *Conn) Restart() { s.r.Reset() }

// SetLimits changes the reading limits.
func (s *Conn) SetLimits(l xmlstream.Limits) {
	s.limits = l
	s.r.SetLimits(l)
}

// SetReadDeadline sets the deadline of reads.
func (s *Conn) SetReadDeadline(d time.Time) error { return s.conn.SetReadDeadline(d) }

// SetWriteDeadline sets the deadline of writes.
func (s *Conn) SetWriteDeadline(d time.Time) error { return s.conn.SetWriteDeadline(d) }

// TLSState returns the TLS state, nil before TLS.
func (s *Conn) TLSState() *tls.ConnectionState {
	if s.tls == nil {
		return nil
	}
	cs := s.tls.ConnectionState()
	return &cs
}

// IsTLS reports whether TLS is on.
func (s *Conn) IsTLS() bool { return s.tls != nil }

// RemoteAddr is the peer's address.
func (s *Conn) RemoteAddr() string { return s.raw.RemoteAddr().String() }

// Interrupt wakes a reader blocked in ReadHeader or Next.
func (s *Conn) Interrupt() { _ = s.raw.SetReadDeadline(time.Now()) }

// Abort closes the connection at once.
func (s *Conn) Abort() error { return s.raw.Close() }

// lingerBytes and lingerTime bound what Close drains from a peer that keeps
// sending.
const (
	lingerBytes = 256 << 10
	lingerTime  = time.Second
)

// Close closes the connection gently: after our side is written, it shuts
// down writing and drops what the peer still sends for a moment, so that
// the peer reads our last words instead of a connection reset.
func (s *Conn) Close() error {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := s.conn.(closeWriter); ok {
		if err := cw.CloseWrite(); err == nil {
			_ = s.conn.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.CopyN(io.Discard, s.br, lingerBytes)
		}
	}
	return s.conn.Close()
}
