package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// Accept accepts connections on l and hands each to handle (as Socket
// returns it), like
// net/http's Serve: on a temporary failure (too many open files, a
// timeout) it backs off, up to a second, and tries again. It returns nil
// once l was closed on purpose (closed reports true), else the error that
// stopped it.
func Accept(l net.Listener, closed func() bool, handle func(net.Conn), log *slog.Logger) error {
	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if closed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		delay = 0
		handle(Socket(conn))
	}
}
