package stream

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"casp3r/internal/xmlstream"
	"casp3r/internal/xmpptest"
)

// testCert returns a self-signed certificate for "example.test".
func testCert(t *testing.T) tls.Certificate { return xmpptest.SelfSigned(t, "example.test") }

// batchConn holds what is written to it while batching is on, and sends
// it in one write when flushed: TLS records written one by one then reach
// the peer together.
type batchConn struct {
	net.Conn
	mu    sync.Mutex
	batch bool
	buf   []byte
}

func (c *batchConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batch {
		c.buf = append(c.buf, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *batchConn) start() {
	c.mu.Lock()
	c.batch = true
	c.mu.Unlock()
}

func (c *batchConn) flush(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batch = false
	if _, err := c.Conn.Write(c.buf); err != nil {
		t.Fatal(err)
	}
	c.buf = nil
}

// tlsPairOpen returns a server Conn over TLS on loopback TCP with the
// client's stream header read, the client's TLS connection and its socket.
func tlsPairOpen(t *testing.T) (*Conn, *tls.Conn, *batchConn) {
	t.Helper()
	srv, cli, bc := tlsPairFresh(t)
	go func() {
		_, _ = cli.Write([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"))
	}()
	if _, err := srv.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	return srv, cli, bc
}

// tlsPairFresh is tlsPairOpen with the stream header left unread.
func tlsPairFresh(t *testing.T) (*Conn, *tls.Conn, *batchConn) {
	t.Helper()
	return tlsPairWith(t, Socket)
}

// tlsPairWith is tlsPairFresh with the server's socket made by wrap
// (Socket, as servers do, or left as it is).
func tlsPairWith(t *testing.T, wrap func(net.Conn) net.Conn) (*Conn, *tls.Conn, *batchConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		ch <- accepted{c, err}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() { raw.Close(); a.c.Close() })
	cert := testCert(t)
	ts := tls.Server(wrap(a.c), &tls.Config{Certificates: []tls.Certificate{cert}})
	bc := &batchConn{Conn: raw}
	cli := tls.Client(bc, &tls.Config{InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := ts.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return NewConn(ts, xmlstream.Limits{}), cli, bc
}

// readOne waits for and reads one element the way a bound c2s session
// does: WaitReadable, then Ready and Next.
func readOne(t *testing.T, c *Conn) *xmlstream.Element {
	t.Helper()
	for {
		if err := c.WaitReadable(); err != nil {
			t.Fatalf("WaitReadable: %v", err)
		}
		ok, err := c.Ready()
		if err != nil {
			t.Fatalf("Ready: %v", err)
		}
		if !ok {
			continue
		}
		el, err := c.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		return el
	}
}

func TestReadyTakesInWholeRecordsTLSHolds(t *testing.T) {
	srv, cli, bc := tlsPairOpen(t)
	// Three records in one TCP write: the first read takes in all three,
	// and crypto/tls keeps the last two while the socket is empty.
	bc.start()
	for _, s := range []string{"<a/>", "<b/>", "<c/>"} {
		if _, err := cli.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	bc.flush(t)
	for _, want := range []string{"a", "b", "c"} {
		el := readOne(t, srv)
		if got := el.Name.Local; got != want {
			t.Fatalf("got <%s>, want <%s>", got, want)
		}
		// What Session.readStanzas does after each element: take in what
		// TLS holds, so that WaitReadable need not wait for the socket.
		ok, err := srv.Ready()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ok, want != "c"; got != want {
			t.Fatalf("after <%s>: Ready = %v, want %v", el.Name.Local, got, want)
		}
	}
}

func TestReadySkipsWhitespace(t *testing.T) {
	srv, cli, _ := tlsPairOpen(t)
	if _, err := cli.Write([]byte(" \n\t ")); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitReadable(); err != nil {
		t.Fatal(err)
	}
	ok, err := srv.Ready()
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatal("Ready after whitespace only")
	}
	if _, err := cli.Write([]byte("  <x/>")); err != nil {
		t.Fatal(err)
	}
	if got, want := readOne(t, srv).Name.Local, "x"; got != want {
		t.Fatalf("got <%s>, want <%s>", got, want)
	}
}

// TestReadyPartialRecord: a client that sends part of a TLS record and
// stops does not hold the reader: Ready reports not ready, and the record
// is read whole once the rest comes.
func TestReadyPartialRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
		max  time.Duration // how long Ready may take with part of a record
	}{
		{"socket", Socket, wokenRecordWait / 2}, // it does not wait at all
		{"plain", func(c net.Conn) net.Conn { return c }, 10 * wokenRecordWait},
	} {
		t.Run(tc.name, func(t *testing.T) { testReadyPartialRecord(t, tc.wrap, tc.max) })
	}
}

func testReadyPartialRecord(t *testing.T, wrap func(net.Conn) net.Conn, max time.Duration) {
	srv, cli, bc := tlsPairWith(t, wrap)
	go func() {
		_, _ = cli.Write([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"))
	}()
	if _, err := srv.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	bc.start()
	if _, err := cli.Write([]byte("<partial/>")); err != nil {
		t.Fatal(err)
	}
	bc.mu.Lock()
	rec := bc.buf
	bc.buf, bc.batch = nil, false
	bc.mu.Unlock()
	if _, err := bc.Conn.Write(rec[:7]); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitReadable(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if ok, err := srv.Ready(); ok || err != nil {
		t.Fatalf("Ready with 7 bytes of a record = %v, %v; want false, nil", ok, err)
	}
	if d := time.Since(start); d > max {
		t.Errorf("Ready waited %v for the rest of the record, want at most %v", d, max)
	}
	if _, err := bc.Conn.Write(rec[7:]); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitReadable(); err != nil {
		t.Fatal(err)
	}
	if ok, err := srv.Ready(); !ok || err != nil {
		t.Fatalf("Ready with the whole record = %v, %v; want true", ok, err)
	}
	el, err := srv.Next()
	if err != nil || el.Name.Local != "partial" {
		t.Fatalf("Next = %v, %v; want <partial/>", el, err)
	}
}

func TestReadyReportsEndOfStream(t *testing.T) {
	srv, cli, _ := tlsPairOpen(t)
	if _, err := cli.Write([]byte("<a/>")); err != nil {
		t.Fatal(err)
	}
	if err := cli.Close(); err != nil { // close_notify, then FIN
		t.Fatal(err)
	}
	readOne(t, srv)
	for {
		ok, err := srv.Ready()
		if err != nil {
			return // the end, from Ready itself or after a wait
		}
		if ok {
			t.Fatal("Ready with nothing sent")
		}
		if err := srv.WaitReadable(); err != nil {
			return
		}
	}
}

func TestInterruptWakesWaitReadableAndStays(t *testing.T) {
	srv, _, _ := tlsPairOpen(t)
	errc := make(chan error, 1)
	go func() { errc <- srv.WaitReadable() }()
	srv.Interrupt()
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WaitReadable after Interrupt: %v, want a timeout", err)
	}
	// A deadline set after Interrupt does not undo it.
	if err := srv.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitReadable(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WaitReadable after Interrupt and a new deadline: %v, want a timeout", err)
	}
}

func TestReadyKeepsDeadline(t *testing.T) {
	srv, cli, _ := tlsPairOpen(t)
	if err := srv.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	ok, err := srv.Ready() // a read with a past deadline, then the hour back
	if err != nil || ok {
		t.Fatalf("Ready = %v, %v; want false, nil", ok, err)
	}
	if _, err := cli.Write([]byte("<late/>")); err != nil {
		t.Fatal(err)
	}
	if got, want := readOne(t, srv).Name.Local, "late"; got != want {
		t.Fatalf("got <%s>, want <%s>", got, want)
	}
}

// writeLog is a net.Conn that records each Write.
type writeLog struct {
	net.Conn
	writes [][]byte
}

func (w *writeLog) Write(b []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), b...))
	return len(b), nil
}

func TestWriteCopiesSmallFramesIntoOneWrite(t *testing.T) {
	small := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	big := small('B', maxWriteCopy+1)
	for _, tc := range []struct {
		name   string
		frames [][]byte
		want   []int // length of each write
	}{
		{"one", [][]byte{small('a', 10)}, []int{10}},
		{"several", [][]byte{small('a', 10), small('b', 20), small('c', 30)}, []int{60}},
		{"big in the middle", [][]byte{small('a', 10), small('b', 20), big, small('c', 30)}, []int{30, maxWriteCopy + 1, 30}},
		{"over the bound", [][]byte{small('a', maxWriteCopy/2), small('b', maxWriteCopy/2), small('c', 1)}, []int{maxWriteCopy, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &writeLog{}
			if err := NewConn(w, xmlstream.Limits{}).Write(tc.frames); err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, b := range w.writes {
				got = append(got, len(b))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("writes of %v bytes, want %v", got, tc.want)
			}
			if got, want := bytes.Join(w.writes, nil), bytes.Join(tc.frames, nil); !bytes.Equal(got, want) {
				t.Errorf("wrote %d bytes not in order", len(got))
			}
		})
	}
}

// endless reads as many bytes as asked, forever.
type endless struct{ n int }

func (e *endless) Read(b []byte) (int, error) { e.n += len(b); return len(b), nil }

func TestDrainIsBounded(t *testing.T) {
	e := &endless{}
	drain(e, 1000)
	if got, want := e.n, 1000; got != want {
		t.Errorf("drained %d bytes, want %d", got, want)
	}
	drain(iotest.ErrReader(io.ErrUnexpectedEOF), 1000) // returns at the error
}
