//go:build !linux

package stream

import (
	"net"
	"time"
)

// sock is, on Linux, a TCP connection read and written with system calls
// of this package's own; elsewhere there is none (Socket returns its
// connection as it is) and these are never called.
type sock struct {
	net.Conn
	mode readMode
}

// Socket returns c as it is: see the Linux version.
func Socket(c net.Conn) net.Conn { return c }

func (c *sock) setReadLimit(time.Duration) {}
