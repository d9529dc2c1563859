package c2s

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"casp3r/internal/stanza"
	"casp3r/internal/stream"
	"casp3r/internal/xmlstream"
)

// WebSocketHandler serves XMPP over WebSocket (RFC 7395) on the HTTP
// endpoint it is mounted at.
func (s *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:       []string{"xmpp"},
			InsecureSkipVerify: true, // any web origin may use its user's account, as with TCP clients
		})
		if err != nil {
			s.log.Debug("websocket accept", "err", err)
			return
		}
		if conn.Subprotocol() != "xmpp" {
			_ = conn.Close(websocket.StatusProtocolError, "the xmpp subprotocol is required")
			return
		}
		t := &wsTransport{conn: conn, tls: r.TLS, remote: r.RemoteAddr, limits: s.cfg.PreAuthLimits}
		t.setLimits(s.cfg.PreAuthLimits)
		if !s.startSession(t, r.TLS != nil) {
			_ = conn.Close(websocket.StatusTryAgainLater, "server busy")
		}
	})
}

// wsTransport frames a stream as RFC 7395 WebSocket messages.
type wsTransport struct {
	conn   *websocket.Conn
	tls    *tls.ConnectionState
	remote string
	limits xmlstream.Limits

	mu            sync.Mutex
	readDeadline  time.Time
	writeDeadline time.Time
}

func (t *wsTransport) ctx(deadline time.Time) (context.Context, context.CancelFunc) {
	if deadline.IsZero() {
		return context.WithCancel(context.Background())
	}
	return context.WithDeadline(context.Background(), deadline)
}

func (t *wsTransport) readFrame() (*xmlstream.Element, error) {
	t.mu.Lock()
	d := t.readDeadline
	lim := t.limits
	t.mu.Unlock()
	ctx, cancel := t.ctx(d)
	defer cancel()
	typ, data, err := t.conn.Read(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, stanza.StreamErr("connection-timeout", "")
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) || errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("websocket read: %w", io.EOF)
		}
		if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
			return nil, stanza.StreamErr("policy-violation", "frame too large")
		}
		return nil, fmt.Errorf("websocket read: %w", err)
	}
	if typ != websocket.MessageText {
		return nil, stanza.StreamErr("bad-format", "XMPP frames are text")
	}
	return xmlstream.ParseFrame(data, lim)
}

func (t *wsTransport) readOpen() (xmlstream.Header, error) {
	el, err := t.readFrame()
	if err != nil {
		return xmlstream.Header{}, err
	}
	if !el.Is(xmlstream.NSFraming, "open") {
		return xmlstream.Header{}, stanza.StreamErr("invalid-namespace", "expected <open/> in "+xmlstream.NSFraming)
	}
	return xmlstream.Header{
		To: el.Get("to"), From: el.Get("from"), ID: el.Get("id"), Version: el.Get("version"),
		Lang: el.Lang(), DefaultNS: xmlstream.NSClient,
	}, nil
}

func (t *wsTransport) next() (*xmlstream.Element, error) {
	el, err := t.readFrame()
	if err != nil {
		return nil, err
	}
	if el.Is(xmlstream.NSFraming, "close") {
		return nil, xmlstream.ErrClosed
	}
	if el.Is(xmlstream.NSFraming, "open") {
		return nil, stanza.StreamErr("invalid-xml", "unexpected <open/>")
	}
	return el, nil
}

func (t *wsTransport) openBytes(id, domain, lang string) []byte {
	el := xmlstream.New(xmlstream.NSFraming, "open", "from", domain, "id", id, "version", "1.0")
	el.Attr = append(el.Attr, xml.Attr{Name: xml.Name{Space: xmlstream.NSXML, Local: "lang"}, Value: lang})
	return xmlstream.AppendXML(nil, el, "")
}

func (t *wsTransport) closeBytes() []byte {
	return xmlstream.AppendXML(nil, xmlstream.New(xmlstream.NSFraming, "close"), "")
}

func (t *wsTransport) encode(b []byte, el *xmlstream.Element) []byte {
	return xmlstream.AppendXML(b, el, "")
}

func (t *wsTransport) write(frames [][]byte) error {
	t.mu.Lock()
	d := t.writeDeadline
	t.mu.Unlock()
	ctx, cancel := t.ctx(d)
	defer cancel()
	for _, f := range frames {
		if err := t.conn.Write(ctx, websocket.MessageText, f); err != nil {
			return fmt.Errorf("websocket write: %w", err)
		}
	}
	return nil
}

func (t *wsTransport) startTLS(*tls.Config) error { return errors.New("no starttls over websocket") }
func (t *wsTransport) restart()                   {}
func (t *wsTransport) waitReadable() error        { return nil }
func (t *wsTransport) ready() (bool, error)       { return true, nil }
func (t *wsTransport) canPark() bool              { return false }
func (t *wsTransport) whenReadable(*stream.Poller, func()) bool {
	return false
}
func (t *wsTransport) canStartTLS() bool               { return false }
func (t *wsTransport) setReadLimit(time.Duration) bool { return false }
func (t *wsTransport) batchDeadline() func(time.Time) error {
	return t.setWriteDeadline
}
func (t *wsTransport) tlsState() *tls.ConnectionState {
	return t.tls
}
func (t *wsTransport) remoteAddr() string { return t.remote }

func (t *wsTransport) setLimits(l xmlstream.Limits) {
	t.mu.Lock()
	t.limits = l
	t.mu.Unlock()
	if l.MaxStanzaBytes > 0 {
		t.conn.SetReadLimit(int64(l.MaxStanzaBytes))
	}
}

func (t *wsTransport) setReadDeadline(d time.Time) error {
	t.mu.Lock()
	t.readDeadline = d
	t.mu.Unlock()
	return nil
}

func (t *wsTransport) setWriteDeadline(d time.Time) error {
	t.mu.Lock()
	t.writeDeadline = d
	t.mu.Unlock()
	return nil
}

func (t *wsTransport) interrupt()   { _ = t.conn.CloseNow() }
func (t *wsTransport) close() error { return t.conn.CloseNow() }
func (t *wsTransport) abort() error { return t.conn.CloseNow() }
