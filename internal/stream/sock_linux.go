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
// deadline only when a read or write has to wait (see setReadLimit, WriteLimit).
type sock struct {
	*net.TCPConn
	rc syscall.RawConn

	// mode is how the next reads treat a socket with nothing to read; only
	// the reader touches it.
	mode readMode

	rop, wop op // the read and the write in progress

	mu sync.Mutex
	r  bound // reads
	w  bound // writes
}

// op is one direction's call in progress. What rc.Read or rc.Write calls
// back is made once per socket and finds its arguments here, so a call
// allocates nothing: a closure per call would, with every variable it
// sets.
type op struct {
	mu      sync.Mutex            // one call at a time
	fn      func(fd uintptr) bool // c.readOnce or c.writeOnce
	p       []byte
	n       int
	errno   syscall.Errno
	limited bool // this call applied the limit
}

// bound is what a sock knows of one direction's deadline.
type bound struct {
	limit   time.Duration // a call that waits, with no deadline set, waits at most this
	set     bool          // a deadline is set (SetReadDeadline, SetWriteDeadline)
	limited bool          // the socket's deadline is limit's, for a call that waits
}

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
	sc := &sock{TCPConn: tc, rc: rc, w: bound{limit: WriteLimit}}
	sc.rop.fn, sc.wop.fn = sc.readOnce, sc.writeOnce
	return sc
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
	n, errno, err := c.call(true, p)
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

// call runs a read (or write) of p through rc, with readOnce (writeOnce)
// as its callback, and takes away the limit's deadline if the call set it.
func (c *sock) call(read bool, p []byte) (int, syscall.Errno, error) {
	o := &c.wop
	if read {
		o = &c.rop
	}
	o.mu.Lock()
	o.p, o.n, o.errno, o.limited = p, 0, 0, false
	var err error
	if read {
		err = c.rc.Read(o.fn)
	} else {
		err = c.rc.Write(o.fn)
	}
	n, errno, limited := o.n, o.errno, o.limited
	o.p = nil
	o.mu.Unlock()
	if limited {
		c.unlimit(read)
	}
	return n, errno, err
}

// readOnce is Read's read(2), called by rc.Read with the socket's read
// lock held; false makes it wait for bytes and call again.
func (c *sock) readOnce(fd uintptr) bool {
	o := &c.rop
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&o.p[0])), uintptr(len(o.p)))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN && c.mode == readWait:
			if !o.limited {
				o.limited = c.limit(true)
			}
			return false
		}
		o.n, o.errno = int(r), e
		return true
	}
}

// Write writes all of p, waiting (in the runtime's poller) only while the
// socket's send buffer is full. The socket's write lock is held throughout,
// so writes from several goroutines do not interleave.
func (c *sock) Write(p []byte) (int, error) {
	n, errno, err := c.call(false, p)
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

// writeOnce is Write's write(2) until p is written, called by rc.Write
// with the socket's write lock held; false makes it wait for room and call
// again.
func (c *sock) writeOnce(fd uintptr) bool {
	o := &c.wop
	for o.n < len(o.p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&o.p[o.n])), uintptr(len(o.p)-o.n))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			if !o.limited {
				o.limited = c.limit(false)
			}
			return false
		case e != 0:
			o.errno = e
			return true
		}
		o.n += int(r)
	}
	return true
}

func (c *sock) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// setReadLimit sets how long a read that has to wait may wait when no
// deadline is set; 0 is no limit.
func (c *sock) setReadLimit(d time.Duration) {
	c.mu.Lock()
	c.r.limit = d
	c.mu.Unlock()
}

// dir returns the bound of reads or of writes, and the socket's own
// deadline setter for it.
func (c *sock) dir(read bool) (*bound, func(time.Time) error) {
	if read {
		return &c.r, c.TCPConn.SetReadDeadline
	}
	return &c.w, c.TCPConn.SetWriteDeadline
}

// limit applies a direction's limit as the socket's deadline, unless a
// deadline is set; it reports whether it did.
func (c *sock) limit(read bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, set := c.dir(read)
	if b.limit <= 0 || b.set {
		return false
	}
	b.limited = true
	_ = set(time.Now().Add(b.limit))
	return true
}

// unlimit takes the limit's deadline away again, unless a deadline was
// set meanwhile (Interrupt's, say).
func (c *sock) unlimit(read bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, set := c.dir(read); b.limited {
		b.limited = false
		_ = set(time.Time{})
	}
}

// setDeadline sets a direction's deadline; it replaces the limit's while
// it is set.
func (c *sock) setDeadline(read bool, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, set := c.dir(read)
	b.set, b.limited = !t.IsZero(), false
	return set(t)
}

// SetReadDeadline sets the deadline of reads.
func (c *sock) SetReadDeadline(t time.Time) error { return c.setDeadline(true, t) }

// SetWriteDeadline sets the deadline of writes.
func (c *sock) SetWriteDeadline(t time.Time) error { return c.setDeadline(false, t) }

// SetDeadline sets both deadlines.
func (c *sock) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
