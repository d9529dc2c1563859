package main

import (
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"syscall"
)

// stampConn is a TCP connection that asks the kernel for the time each
// read's data arrived (SO_TIMESTAMPNS): a message's one-way latency then
// ends when it reached the recipient's socket, not when the recipient's
// reader goroutine got the load tool's one core, which would add the
// tool's own scheduling to every server's figure.
type stampConn struct {
	*net.TCPConn
	rc   syscall.RawConn
	last atomic.Int64 // arrival of the last read's data, Unix ns; 0: unknown
}

// stamped wraps c when the kernel can time its reads.
func stamped(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c
	}
	return &stampConn{TCPConn: tc, rc: rc}
}

func (s *stampConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var oob [64]byte
	var n, oobn int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), b, oob[:], 0)
		return rerr != syscall.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	// 0 when the kernel gave no time: right after timestamps are first
	// turned on in the system, it starts stamping a moment later.
	ts, _ := arrival(oob[:oobn])
	s.last.Store(ts)
	return n, nil
}

// arrival returns the SCM_TIMESTAMPNS time in oob (a struct timespec:
// two 64-bit fields, or two 32-bit ones on 32-bit ARM), in Unix ns.
func arrival(oob []byte) (int64, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != syscall.SOL_SOCKET || m.Header.Type != syscall.SCM_TIMESTAMPNS {
			continue
		}
		e := binary.NativeEndian
		switch len(m.Data) {
		case 16:
			return int64(e.Uint64(m.Data))*1e9 + int64(e.Uint64(m.Data[8:])), true
		case 8:
			return int64(int32(e.Uint32(m.Data)))*1e9 + int64(int32(e.Uint32(m.Data[4:]))), true
		}
	}
	return 0, false
}

// lastArrival returns when the data of c's last read arrived, in Unix ns,
// if c is a stampConn that knows.
func lastArrival(c net.Conn) (int64, bool) {
	s, ok := c.(*stampConn)
	if !ok {
		return 0, false
	}
	v := s.last.Load()
	return v, v != 0
}
