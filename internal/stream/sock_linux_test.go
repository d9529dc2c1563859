package stream

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// sockPair returns the accepting side of a loopback TCP connection as a
// sock, and the dialling side as it is.
func sockPair(t *testing.T) (*sock, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := <-ch
	if c == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { peer.Close(); c.Close() })
	sc, ok := Socket(c).(*sock)
	if !ok {
		t.Fatalf("Socket(%T) is not a sock", c)
	}
	return sc, peer
}

// readAll reads from c until it has want bytes.
func readAll(t *testing.T, c net.Conn, want int) []byte {
	t.Helper()
	buf := make([]byte, want)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf
}

func TestSockReadModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode readMode
		sent string
		want string // "" with a timeout error
	}{
		{"no wait, bytes there", readNoWait, "abc", "abc"},
		{"no wait, nothing there", readNoWait, "", ""},
		{"none, bytes there", readNone, "abc", ""},
		{"none, nothing there", readNone, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := sockPair(t)
			if tc.sent != "" {
				if _, err := peer.Write([]byte(tc.sent)); err != nil {
					t.Fatal(err)
				}
				// The bytes are in the socket once a peek sees them.
				for !hasInputConn(t, c) {
					time.Sleep(time.Millisecond)
				}
			}
			c.mode = tc.mode
			buf := make([]byte, 16)
			n, err := c.Read(buf)
			if tc.want == "" {
				if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("Read = %d, %v; want 0 and a timeout", n, err)
				}
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("Read error %v is not a net.Error timeout (crypto/tls would keep it)", err)
				}
			} else if got := string(buf[:n]); err != nil || got != tc.want {
				t.Fatalf("Read = %q, %v; want %q", got, err, tc.want)
			}
			// What a mode left in the socket, a waiting read gets.
			c.mode = readWait
			if tc.sent != "" && tc.want == "" {
				n, err := c.Read(buf)
				if got := string(buf[:n]); err != nil || got != tc.sent {
					t.Fatalf("Read after = %q, %v; want %q", got, err, tc.sent)
				}
			}
		})
	}
}

// hasInputConn reports whether c's socket has bytes to read.
func hasInputConn(t *testing.T, c *sock) bool {
	t.Helper()
	var has bool
	if err := c.rc.Control(func(fd uintptr) { has = hasInput(fd) }); err != nil {
		t.Fatal(err)
	}
	return has
}

func TestSockReadWaitsAndEnds(t *testing.T) {
	c, peer := sockPair(t)
	go func() {
		_, _ = peer.Write([]byte("late"))
		_ = peer.Close()
	}()
	buf := make([]byte, 16)
	n, err := io.ReadAtLeast(c, buf, 4)
	if got := string(buf[:n]); err != nil || got != "late" {
		t.Fatalf("Read = %q, %v; want %q", got, err, "late")
	}
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end = %d, %v; want io.EOF", n, err)
	}
}

func TestSockReadLimit(t *testing.T) {
	c, peer := sockPair(t)
	c.setReadLimit(50 * time.Millisecond)
	buf := make([]byte, 16)
	start := time.Now()
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with nothing sent = %v; want a timeout after the limit", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Read gave up after %v, before the limit", d)
	}
	// The limit's deadline is gone once the read ended: a read after it
	// gets what comes, not a timeout.
	c.setReadLimit(0)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = peer.Write([]byte("x"))
	}()
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("Read after the limit = %d, %v; want the byte sent", n, err)
	}

	// A deadline set wins over the limit.
	c.setReadLimit(time.Hour)
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with a deadline = %v; want a timeout", err)
	}

	// A deadline set during a limited wait (Interrupt's) ends it, and
	// the wait's end does not take it away.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		errc <- err
	}()
	for !c.limitedNow() {
		time.Sleep(time.Millisecond)
	}
	if err := c.SetReadDeadline(longAgo); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("limited Read after a deadline in the past = %v; want a timeout", err)
	}
	if _, err := peer.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after that = %v; want the deadline in the past to stay", err)
	}
}

// limitedNow reports whether a read waits under the read limit.
func (c *sock) limitedNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r.limited
}

func TestSockWriteLimit(t *testing.T) {
	c, peer := sockPair(t)
	c.w.limit = 100 * time.Millisecond // WriteLimit's 30 s, shortened
	big := make([]byte, 64<<20)        // more than both socket buffers hold
	n, err := c.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= len(big) {
		t.Fatalf("Write to a peer that reads nothing = %d of %d, %v; want part, then a timeout", n, len(big), err)
	}
	// The limit's deadline is gone: once the peer reads, writing works.
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	if n, err := c.Write(big[:1<<20]); err != nil || n != 1<<20 {
		t.Fatalf("Write after the peer read = %d, %v; want it whole", n, err)
	}
}

func TestSockWrite(t *testing.T) {
	c, peer := sockPair(t)
	msg := []byte("<message/>")
	if n, err := c.Write(msg); err != nil || n != len(msg) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := readAll(t, peer, len(msg)); string(got) != string(msg) {
		t.Fatalf("peer read %q, want %q", got, msg)
	}
	_ = peer.Close()
	// Writing on after the peer closed fails (a reset), and says so.
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Write(msg)
		time.Sleep(time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" {
		t.Fatalf("Write to a closed peer = %v; want a write OpError", err)
	}
}

// A read and a write that do not wait allocate nothing: they run on every
// message.
func TestSockAllocatesNothing(t *testing.T) {
	c, peer := sockPair(t)
	buf := make([]byte, 64)
	msg := []byte("<m/>")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := peer.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a read and a write allocate %v times, want 0", allocs)
	}
}
