//go:build !linux

package stream

import "sync/atomic"

// Poller would wait for many idle connections on one goroutine; it needs
// Linux's epoll, so elsewhere NewPoller returns nil and connections wait in
// Conn.WaitReadable.
type Poller struct{}

// NewPoller returns nil: there is no poller here.
func NewPoller(run func(func())) *Poller { return nil }

func (p *Poller) park(fd int, added *bool, tok *atomic.Uint64, fn func()) bool { return false }

func (p *Poller) cancel(tok uint64) {}

// Close does nothing.
func (p *Poller) Close() {}
