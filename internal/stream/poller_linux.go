package stream

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Poller waits for many idle connections at once, on one goroutine and
// one epoll descriptor of its own: a connection parked with Conn.WhenReadable holds no
// goroutine, and so no stack, until its peer sends something. Go's own
// poller wakes only goroutines parked on a socket, one each.
//
// Each connection is registered once (EPOLLONESHOT) and re-armed at each
// park; the registration ends with the socket. Events carry a token, not
// the descriptor, so an event for a socket closed meanwhile (whose number
// a new connection may have taken) finds no waiter and is dropped.
type Poller struct {
	run func(func()) // runs a woken connection's callback

	mu      sync.Mutex
	epfd    int
	ep      *os.File        // epfd, waited on by Go's own poller
	rc      syscall.RawConn // of ep
	pipe    [2]int          // Close writes to pipe[1] to end the loop
	waits   map[uint64]func()
	next    uint64
	started bool // the loop runs
	closed  bool // no new waits
	shut    bool // Close was called
	done    chan struct{}
}

// NewPoller returns a poller that hands each woken connection's callback
// to run (a worker pool's Go, say), or nil where it cannot poll; callers
// then wait in Conn.WaitReadable. Its goroutine starts with the first
// park; Close ends it.
func NewPoller(run func(func())) *Poller {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	// The loop waits for epfd in Go's own poller (an epoll descriptor is
	// readable while it has events), not in a blocking epoll_wait that
	// would hold the thread and its P: woken connections then run as soon
	// as a goroutine woken by the network would.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		return nil
	}
	p := &Poller{run: run, epfd: epfd, waits: make(map[uint64]func()), done: make(chan struct{})}
	p.ep = os.NewFile(uintptr(epfd), "epoll")
	rc, err := p.ep.SyscallConn()
	if err != nil {
		_ = p.ep.Close()
		return nil
	}
	p.rc = rc
	if err := syscall.Pipe2(p.pipe[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = p.ep.Close()
		return nil
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // token 0
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.pipe[0], &ev); err != nil {
		p.closeFDs()
		return nil
	}
	return p
}

func (p *Poller) closeFDs() {
	_ = p.ep.Close()
	_ = syscall.Close(p.pipe[0])
	_ = syscall.Close(p.pipe[1])
}

// park arms fd (registered already if *added) to call fn once readable,
// and returns the wait's token; false when the poller is closed or the
// socket cannot be watched. fd must stay open during the call. What park
// writes (*added, *tok) is written before fn can run.
func (p *Poller) park(fd int, added *bool, tok *atomic.Uint64, fn func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.next++
	t := p.next
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(t)),
		Pad:    int32(uint32(t >> 32)),
	}
	op := syscall.EPOLL_CTL_MOD
	if !*added {
		op = syscall.EPOLL_CTL_ADD
	}
	if err := epollCtl(p.epfd, op, fd, &ev); err != nil {
		return false
	}
	*added = true
	tok.Store(t)
	p.waits[t] = fn
	if !p.started {
		p.started = true
		go p.loop()
	}
	return true
}

// cancel wakes the wait tok at once, if it is still waiting.
func (p *Poller) cancel(tok uint64) {
	p.mu.Lock()
	fn := p.waits[tok]
	delete(p.waits, tok)
	p.mu.Unlock()
	if fn != nil {
		p.run(fn)
	}
}

func (p *Poller) loop() {
	defer close(p.done)
	var evs [64]syscall.EpollEvent
	_ = p.rc.Read(func(uintptr) bool {
		for {
			n, err := epollPoll(p.epfd, evs[:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return true
			}
			for _, ev := range evs[:n] {
				tok := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
				if tok == 0 {
					return true // Close
				}
				p.cancel(tok)
			}
			if n < len(evs) {
				// All that was ready is taken. What becomes ready from
				// now on makes epfd readable again, for Go's poller
				// (which registers it edge-triggered) to report.
				return false
			}
		}
	})
	// Closed, or the poller failed: let each connection find out.
	p.wakeAll()
}

// wakeAll wakes every waiting connection and refuses new waits.
func (p *Poller) wakeAll() {
	p.mu.Lock()
	p.closed = true
	waits := p.waits
	p.waits = nil
	p.mu.Unlock()
	for _, fn := range waits {
		p.run(fn)
	}
}

// Close wakes the connections still waiting (they find their sockets as
// they are) and ends the poller's goroutine. Call it after the
// connections have ended, as a server's Shutdown does.
func (p *Poller) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.shut {
		p.mu.Unlock()
		return
	}
	p.shut, p.closed = true, true
	started := p.started
	p.mu.Unlock()
	if started {
		_, _ = syscall.Write(p.pipe[1], []byte{0})
		<-p.done
	}
	p.wakeAll()
	p.closeFDs()
}

// epollCtl is epoll_ctl(2), and epollPoll epoll_pwait(2) with no wait,
// both made without telling the Go scheduler: neither call waits, and
// telling it costs more than the call (see sock).
func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func epollPoll(epfd int, evs []syscall.EpollEvent) (int, error) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
