package stream

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

func TestEnding(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		cond       string
		sendClose  bool
		unexpected bool
	}{
		{"peer closed the stream", xmlstream.ErrClosed, "", true, false},
		{"connection gone", fmt.Errorf("read: %w", io.EOF), "", false, false},
		{"closed here", net.ErrClosed, "", false, false},
		{"stream error", stanza.StreamErr("invalid-from", ""), "invalid-from", true, false},
		{"parser", &xmlstream.Error{Condition: "restricted-xml"}, "restricted-xml", true, false},
		{"timeout", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), "connection-timeout", true, false},
		{"ours", errors.New("disk on fire"), "internal-server-error", true, true},
	}
	for _, tc := range tests {
		se, sendClose, unexpected := Ending(tc.err)
		cond := ""
		if se != nil {
			cond = se.Condition
		}
		if cond != tc.cond || sendClose != tc.sendClose || unexpected != tc.unexpected {
			t.Errorf("%s: got %q, %v, %v; want %q, %v, %v", tc.name, cond, sendClose, unexpected, tc.cond, tc.sendClose, tc.unexpected)
		}
	}
}
