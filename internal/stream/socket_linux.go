package stream

import "syscall"

// canWaitSocket reports whether waitSocket works here.
const canWaitSocket = true

// waitSocket blocks until the socket has bytes to read, or is at its end
// or failed, without reading anything. The runtime's poller does the
// waiting (syscall.RawConn.Read), with the read deadline applied.
func waitSocket(rc syscall.RawConn) error {
	return rc.Read(hasInput)
}

// hasInput reports whether a read of fd would not wait: it peeks at one
// byte without taking it. End of stream and errors count as input, for the
// read that follows to report.
func hasInput(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}
