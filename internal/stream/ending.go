package stream

import (
	"errors"
	"io"
	"net"

	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// Ending says how a stream whose reader stopped with err ends: the stream
// error to send (nil for none), whether to send our closing tag at all
// (not when the connection is already gone), and whether err is a failure
// of ours worth a warning. It is where Go errors become stream errors.
func Ending(err error) (se *stanza.StreamError, sendClose, unexpected bool) {
	var xe *xmlstream.Error
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, xmlstream.ErrClosed):
		return nil, true, false
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return nil, false, false
	case errors.As(err, &se):
		return se, true, false
	case errors.As(err, &xe):
		return stanza.StreamErr(xe.Condition, xe.Text), true, false
	case errors.As(err, &ne) && ne.Timeout():
		return stanza.StreamErr("connection-timeout", ""), true, false
	}
	return stanza.StreamErr("internal-server-error", ""), true, true
}
