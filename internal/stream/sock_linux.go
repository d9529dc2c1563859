package stream

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// sock is a TCP connection whose reads and writes are single non-blocking
// system calls made without telling the Go scheduler (RawSyscall), waiting
// in the runtime's poller only when the socket is not ready, with the
// deadlines set on it.
//
// On a socket a read or write never blocks, so the scheduler has nothing to
// hand over; telling it costs more than the call. On a server with one CPU
// it costs most: the first system call after an idle moment wakes the
// runtime's monitor thread, which then polls every 20 µs for a millisecond,
// on the same CPU as the connections it delays. At 1,000 messages a second
// that was every message.
//
// A sock also waits with limits of its own, set once, rather than
// deadlines set and cleared around each stanza: the limit is applied as a
// deadline only when a read or write has to wait (see setLimits).
type sock struct {
	*net.TCPConn
	rc syscall.RawConn

	// mode is how the next reads treat a socket with nothing to read; only
	// the reader touches it.
	mode readMode

	mu       sync.Mutex
	rLimit   time.Duration // a read that waits, with no deadline set, waits at most this
	wLimit   time.Duration // the same for a write
	rSet     bool          // a read deadline is set (SetReadDeadline)
	wSet     bool          // a write deadline is set
	rLimited bool          // the socket's read deadline is rLimit's, for a read that waits
	wLimited bool
}

// readMode is what a sock's read does when the socket has nothing.
type readMode uint8

const (
	readWait   readMode = iota // wait for bytes (within the deadline or limit)
	readNoWait                 // take what the socket has; if nothing, errWouldBlock
	readNone                   // do not read the socket at all: errWouldBlock
)

// errWouldBlock is what a read that may not wait returns: a timeout, so
// crypto/tls keeps a record it holds in part, and Ready treats it as a
// deadline that passed.
var errWouldBlock = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

// Socket returns c ready for a stream: a TCP connection becomes one read
// and written with system calls of this package's own (see sock); any
// other connection is returned as it is. Call it before TLS goes on top.
func Socket(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &sock{TCPConn: tc, rc: rc, wLimit: WriteLimit}
}

// SyscallConn returns the socket's raw connection.
func (c *sock) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// NetConn returns the TCP connection.
func (c *sock) NetConn() net.Conn { return c.TCPConn }

// Read reads what the socket has, waiting (in the runtime's poller) only
// when it has nothing, as the mode allows.
func (c *sock) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.mode == readNone {
		return 0, errWouldBlock
	}
	var n int
	var errno syscall.Errno
	limited := false
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN && c.mode == readWait:
				if !limited {
					limited = c.limitRead()
				}
				return false // wait for bytes, then call again
			}
			n, errno = int(r), e
			return true
		}
	})
	if limited {
		c.unlimitRead()
	}
	switch {
	case err != nil:
		return 0, err
	case errno == syscall.EAGAIN:
		return 0, errWouldBlock
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting (in the runtime's poller) only while the
// socket's send buffer is full. The socket's write lock is held throughout,
// so writes from several goroutines do not interleave.
func (c *sock) Write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	limited := false
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				if !limited {
					limited = c.limitWrite()
				}
				return false // wait for room, then call again
			case e != 0:
				errno = e
				return true
			}
			n += int(r)
		}
		return true
	})
	if limited {
		c.unlimitWrite()
	}
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

func (c *sock) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// setLimits sets how long a read and a write that have to wait may wait
// when no deadline is set; 0 is no limit.
func (c *sock) setLimits(read, write time.Duration) {
	c.mu.Lock()
	c.rLimit, c.wLimit = read, write
	c.mu.Unlock()
}

// limitRead applies the read limit as the socket's deadline, unless a
// deadline is set; it reports whether it did.
func (c *sock) limitRead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rLimit <= 0 || c.rSet {
		return false
	}
	c.rLimited = true
	_ = c.TCPConn.SetReadDeadline(time.Now().Add(c.rLimit))
	return true
}

// unlimitRead takes the limit's deadline away again, unless a deadline
// was set meanwhile (Interrupt's, say).
func (c *sock) unlimitRead() {
	c.mu.Lock()
	if c.rLimited {
		c.rLimited = false
		_ = c.TCPConn.SetReadDeadline(time.Time{})
	}
	c.mu.Unlock()
}

func (c *sock) limitWrite() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wLimit <= 0 || c.wSet {
		return false
	}
	c.wLimited = true
	_ = c.TCPConn.SetWriteDeadline(time.Now().Add(c.wLimit))
	return true
}

func (c *sock) unlimitWrite() {
	c.mu.Lock()
	if c.wLimited {
		c.wLimited = false
		_ = c.TCPConn.SetWriteDeadline(time.Time{})
	}
	c.mu.Unlock()
}

// SetReadDeadline sets the deadline of reads; it replaces the read limit's
// while it is set.
func (c *sock) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rSet, c.rLimited = !t.IsZero(), false
	return c.TCPConn.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline of writes; it replaces the write
// limit's while it is set.
func (c *sock) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wSet, c.wLimited = !t.IsZero(), false
	return c.TCPConn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines.
func (c *sock) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
