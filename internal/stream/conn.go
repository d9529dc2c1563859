package stream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"casp3r/internal/xmlstream"
)

// Conn is an XML stream over a TCP connection, before and after TLS: one
// reader of top-level elements, batched writes, STARTTLS on either side
// and a gentle close.
type Conn struct {
	raw  net.Conn      // the TCP connection, never replaced: safe from any goroutine
	conn net.Conn      // raw, or the TLS connection over it
	br   *bufio.Reader // nil while the connection waits idle (Ready)
	r    *xmlstream.Reader
	tls  *tls.Conn

	sys      syscall.RawConn // the socket under TLS, to wait for readability; nil if none
	sock     *sock           // the socket under TLS, when Socket made it; nil if not
	woken    bool            // the socket was seen readable; Ready reads once
	added    bool            // the socket is registered with poller
	deadline time.Time       // the read deadline set with SetReadDeadline
	stop     atomic.Bool     // Interrupt was called
	poller   atomic.Pointer[Poller]
	tok      atomic.Uint64 // the poller wait of the last WhenReadable
}

// readBufSize is the read buffer of a connection: small, since every
// connection holds one while it reads.
const readBufSize = 512

// readBufs holds the read buffers connections lend out while idle (see
// Ready), for the connections that read next.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

// getReadBuf returns a read buffer reading from c.
func getReadBuf(c io.Reader) *bufio.Reader {
	br := readBufs.Get().(*bufio.Reader)
	br.Reset(c)
	return br
}

// putReadBuf gives back an empty read buffer.
func putReadBuf(br *bufio.Reader) {
	br.Reset(nil)
	readBufs.Put(br)
}

// ErrInjected reports bytes other than whitespace between <starttls/> and
// the TLS handshake: plaintext that would be taken as part of the secure
// stream (the CVE-2011-1431 class of bugs).
var ErrInjected = errors.New("plaintext before the tls handshake")

// NewConn wraps c (already TLS for direct TLS) with limits for reading.
func NewConn(c net.Conn, lim xmlstream.Limits) *Conn {
	s := &Conn{raw: c, conn: c}
	if tc, ok := c.(*tls.Conn); ok {
		s.tls = tc
	}
	s.br = getReadBuf(c)
	s.r = xmlstream.NewReader(s.br, lim)
	s.sys = sysConn(c)
	s.sock = sockOf(c)
	return s
}

// sockOf returns the sock under c (and under TLS), nil if there is none.
func sockOf(c net.Conn) *sock {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, _ := c.(*sock)
	return sc
}

// BatchDeadline returns what a Queue writing to s calls before each batch
// (NewQueue's setWriteDeadline): nil when s bounds a write that waits
// itself, as a connection made with Socket does (WriteLimit), else
// SetWriteDeadline.
func (s *Conn) BatchDeadline() func(time.Time) error {
	if s.sock != nil {
		return nil
	}
	return s.SetWriteDeadline
}

// SetReadLimit bounds how long a read that has to wait for the peer may
// wait while no deadline is set (0: no bound), and reports whether it can:
// only on a connection made with Socket. The bound costs nothing until a
// read waits, unlike a deadline set before each read.
func (s *Conn) SetReadLimit(d time.Duration) bool {
	if s.sock == nil {
		return false
	}
	s.sock.setReadLimit(d)
	return true
}

// sysConn returns the socket under c (and under TLS), nil if it has none
// (a net.Pipe, say).
func sysConn(c net.Conn) syscall.RawConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// ReadHeader reads the peer's stream header.
func (s *Conn) ReadHeader() (xmlstream.Header, error) { return s.r.ReadHeader() }

// WaitReadable blocks until the peer sent something, or reading fails; call
// Ready next. It is the cheap place for an idle connection to wait: unless
// bytes are buffered already, it waits on the socket itself, below TLS, so
// that no decryption runs on the waiting goroutine and its stack stays at
// its smallest. Where the socket cannot be waited on (not Linux, or no
// socket), it waits in a read of one byte instead.
//
// That the socket is readable is all it takes: a TLS record the peer sent
// in part stays buffered in crypto/tls until the rest arrives, which makes
// the socket readable again, and Ready, called before each wait, has taken
// in what crypto/tls held whole.
func (s *Conn) WaitReadable() error {
	if s.br != nil && s.br.Buffered() > 0 {
		return nil
	}
	if s.sys == nil || !canWaitSocket {
		_, err := s.br.Peek(1)
		return err
	}
	if err := waitSocket(s.sys); err != nil {
		return err
	}
	s.woken = true
	return nil
}

// Ready reports whether the start of an element is buffered, so that Next
// will not wait for the peer before it has a first byte. It drops the
// whitespace between elements (keepalives) and reads only what can be read
// without waiting: after WaitReadable, what the socket holds (over TLS, a
// record begun but not whole stays with crypto/tls; on a connection not
// made with Socket, Ready waits at most wokenRecordWait for its rest); else
// what crypto/tls has decrypted or received whole already. A deadline passing is
// not an error here (Ready then reports false), unless Interrupt was called.
//
// When Ready reports false, with nothing buffered, the connection lends its
// read buffer out until WaitReadable returns: an idle connection holds none.
//
// Ready may decrypt a TLS record, which takes a deep stack: call it where
// Next is called, not on the goroutine that waits in WaitReadable.
func (s *Conn) Ready() (bool, error) {
	woken := s.woken
	s.woken = false
	if s.br == nil {
		s.br = getReadBuf(s.conn)
		s.r.SetBuffer(s.br)
	}
	for {
		for s.br.Buffered() > 0 {
			b, _ := s.br.Peek(1)
			switch b[0] {
			case ' ', '\t', '\r', '\n':
				_, _ = s.br.Discard(1)
			default:
				return true, nil
			}
		}
		var err error
		switch {
		case woken && s.sock != nil:
			// Take what the socket has, and no more: perhaps not a whole
			// TLS record, which crypto/tls would wait for, and a client
			// that stops half way must not hold the caller. crypto/tls
			// keeps the part it read; the connection parks until more
			// comes. (Nor does it wait when the wake was not for bytes.)
			woken = false
			err = s.peekSock(readNoWait)
		case woken && s.tls != nil:
			// The same without a sock: wait a moment for the rest.
			woken = false
			_ = s.raw.SetReadDeadline(time.Now().Add(wokenRecordWait))
			_, err = s.br.Peek(1)
			_ = s.setRawReadDeadline(s.deadline)
		case woken: // the socket has bytes: this read does not wait
			woken = false
			_, err = s.br.Peek(1)
		case s.tls != nil:
			err = s.fillHeld()
		default:
			s.lendReadBuf()
			return false, nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !s.stop.Load() {
			s.lendReadBuf()
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// WhenReadable parks the connection on p, with no goroutine waiting: fn
// runs once, through p, when the peer sent something (where WaitReadable
// would return), or when Interrupt or Abort is called. Call Ready first:
// it must have reported false. The connection is fn's from then on: the
// caller must not touch it after WhenReadable reported true.
//
// It reports false when the connection cannot be parked: p is nil or
// closed, the connection has no socket, or a read deadline is set (p does
// not keep deadlines). Then wait in WaitReadable.
func (s *Conn) WhenReadable(p *Poller, fn func()) bool {
	if p == nil || s.sys == nil || !s.deadline.IsZero() || s.br != nil && s.br.Buffered() > 0 {
		return false
	}
	if q := s.poller.Load(); q != p {
		if q != nil || !s.poller.CompareAndSwap(nil, p) {
			return false // one poller per connection: its registration is there
		}
	}
	s.woken = true // for fn's Ready: the socket is readable then
	parked := false
	err := s.sys.Control(func(fd uintptr) {
		parked = p.park(int(fd), &s.added, &s.tok, fn)
	})
	if err != nil || !parked {
		s.woken = false
		return false
	}
	if s.stop.Load() {
		p.cancel(s.tok.Load()) // Interrupt ran before the wait was there
	}
	return true
}

// wakeParked runs the callback of a WhenReadable wait now, if one waits.
func (s *Conn) wakeParked() {
	if p := s.poller.Load(); p != nil {
		if tok := s.tok.Load(); tok != 0 {
			p.cancel(tok)
		}
	}
}

// lendReadBuf gives the empty read buffer back while the connection waits
// on its socket (only then: elsewhere WaitReadable reads into it).
func (s *Conn) lendReadBuf() {
	if s.sys == nil || !canWaitSocket || s.br.Buffered() > 0 {
		return
	}
	putReadBuf(s.br)
	s.br = nil
	s.r.SetBuffer(nil)
}

// fillHeld reads into the buffer what crypto/tls holds already, without
// reading the socket: a read with a deadline in the past fails before it
// makes a system call, while crypto/tls serves what it holds first. A
// timeout does not break a tls.Conn's reading (net.Error.Temporary).
func (s *Conn) fillHeld() error {
	if s.sock != nil {
		return s.peekSock(readNone)
	}
	_ = s.raw.SetReadDeadline(longAgo)
	_, err := s.br.Peek(1)
	_ = s.setRawReadDeadline(s.deadline)
	return err
}

// peekSock peeks at the next byte with the sock reading in mode m.
func (s *Conn) peekSock(m readMode) error {
	s.sock.mode = m
	_, err := s.br.Peek(1)
	s.sock.mode = readWait
	return err
}

// wokenRecordWait bounds how long Ready waits for the rest of a TLS record
// whose start woke the connection.
const wokenRecordWait = 200 * time.Millisecond

// longAgo is a read deadline that has passed.
var longAgo = time.Unix(1, 0)

// Next reads the next top-level element.
func (s *Conn) Next() (*xmlstream.Element, error) { return s.r.Next() }

// maxWriteCopy bounds the bytes Write copies into one buffer.
const maxWriteCopy = 16 << 10

// writeBufs holds the buffers Write copies small frames into.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Write writes frames in one batch. Frames are copied into one buffer, up
// to maxWriteCopy bytes at a time, and written with one call: over TLS that
// is one record and one system call instead of one per frame, and on plain
// TCP it avoids writev, whose iovec array the runtime keeps with the
// socket for as long as it is open.
func (s *Conn) Write(frames [][]byte) error {
	for len(frames) > 0 {
		n, size := 1, len(frames[0])
		for n < len(frames) && size+len(frames[n]) <= maxWriteCopy {
			size += len(frames[n])
			n++
		}
		if n == 1 {
			if _, err := s.conn.Write(frames[0]); err != nil {
				return err
			}
			frames = frames[1:]
			continue
		}
		bp := writeBufs.Get().(*[]byte)
		b := (*bp)[:0]
		for _, f := range frames[:n] {
			b = append(b, f...)
		}
		_, err := s.conn.Write(b)
		*bp = b[:0]
		writeBufs.Put(bp)
		if err != nil {
			return err
		}
		frames = frames[n:]
	}
	return nil
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
	s.r = xmlstream.NewReader(s.br, s.r.Limits())
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
func (s *Conn) SetLimits(l xmlstream.Limits) { s.r.SetLimits(l) }

// SetReadDeadline sets the deadline of reads. After Interrupt, reads stay
// interrupted whatever the deadline.
func (s *Conn) SetReadDeadline(d time.Time) error {
	s.deadline = d
	return s.setRawReadDeadline(d)
}

func (s *Conn) setRawReadDeadline(d time.Time) error {
	err := s.raw.SetReadDeadline(d)
	if s.stop.Load() {
		// Interrupt ran meanwhile; its deadline must win.
		_ = s.raw.SetReadDeadline(longAgo)
	}
	return err
}

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

// Interrupt wakes a reader blocked in ReadHeader, Next or WaitReadable, or
// parked with WhenReadable, and makes later reads fail at once.
func (s *Conn) Interrupt() {
	s.stop.Store(true)
	_ = s.raw.SetReadDeadline(longAgo)
	s.wakeParked()
}

// Abort closes the connection at once (and wakes a WhenReadable wait,
// whose read then fails).
func (s *Conn) Abort() error {
	err := s.raw.Close()
	s.wakeParked()
	return err
}

// lingerBytes and lingerTime bound what Close drains from a peer that keeps
// sending.
const (
	lingerBytes = 256 << 10
	lingerTime  = time.Second
)

// Close closes the connection gently: after our side is written, it shuts
// down writing and drops what the peer still sends for a moment, so that
// the peer reads our last words instead of a connection reset. What is
// dropped is read from the socket, below TLS: nothing is decrypted.
func (s *Conn) Close() error {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := s.conn.(closeWriter); ok {
		if err := cw.CloseWrite(); err == nil {
			_ = s.raw.SetReadDeadline(time.Now().Add(lingerTime))
			drain(s.raw, lingerBytes)
		}
	}
	return s.conn.Close()
}

// drain reads and drops up to max bytes from r, until it fails. Its buffer
// is small and on the stack: when many clients leave at once, each closing
// connection would otherwise hold one of io.Discard's 8 KB buffers (and,
// reading through TLS, grow a deeper stack to decrypt).
func drain(r io.Reader, max int) {
	var buf [256]byte
	for n := 0; n < max; {
		m, err := r.Read(buf[:min(len(buf), max-n)])
		n += m
		if err != nil {
			return
		}
	}
}
