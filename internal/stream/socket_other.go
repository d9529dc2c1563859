//go:build !linux

package stream

import (
	"errors"
	"syscall"
)

// canWaitSocket reports whether waitSocket works here: on Linux only, so
// elsewhere WaitReadable waits in a read.
const canWaitSocket = false

func waitSocket(syscall.RawConn) error {
	return errors.New("waiting on a socket is not supported here")
}
