package s2s

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"casp3r/internal/stanza"
	"casp3r/internal/stream"
	"casp3r/internal/xmlstream"
)

const nsTLS = "urn:ietf:params:xml:ns:xmpp-tls"
const nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"

// outgoing is our stream to one domain: the stanzas waiting for it, the
// connection once authenticated, and dialback verifications we asked of
// that domain's server.
type outgoing struct {
	srv    *Server
	domain string
	log    *slog.Logger

	mu       sync.Mutex
	pending  []*xmlstream.Element // waiting for the stream to be ready
	running  bool                 // a connect goroutine exists
	q        *stream.Queue        // the current connection's writer
	conn     *stream.Conn
	ready    bool // authenticated: stanzas go straight out
	canAsk   bool // TLS is up: db:verify may be written
	asks     []verifyAsk
	waiters  map[string]chan bool // stream id of a db:verify we sent → its answer
	lastUsed time.Time
	closing  bool
}

type verifyAsk struct{ id, key string }

// peerError is a stream error the peer sent us: it refused us, and trying
// again at once would not change its mind.
type peerError struct{ domain, condition string }

func (e *peerError) Error() string { return "stream error from " + e.domain + ": " + e.condition }

func newOutgoing(s *Server, domain string) *outgoing {
	return &outgoing{srv: s, domain: domain, log: s.log.With("out", domain), waiters: make(map[string]chan bool)}
}

// send queues st for the domain, connecting when needed.
func (o *outgoing) send(st *xmlstream.Element) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastUsed = time.Now()
	if o.ready {
		if !o.q.Push(encode(st)) {
			return stanza.ResourceConstraint.WithText("too much queued for " + o.domain)
		}
		return nil
	}
	if len(o.pending) >= o.srv.cfg.MaxQueue {
		return stanza.ResourceConstraint.WithText("too much queued for " + o.domain)
	}
	o.pending = append(o.pending, st)
	o.startLocked()
	return nil
}

func (o *outgoing) startLocked() {
	if o.running || o.closing {
		return
	}
	o.running = true
	o.srv.goTracked(o.run)
}

// verify asks the domain's server whether key, which a peer claiming to be
// that domain presented on our incoming stream id, is genuine (XEP-0220
// §2.2: db:verify to the authoritative server).
func (o *outgoing) verify(ctx context.Context, id, key string) (bool, error) {
	ch := make(chan bool, 1)
	o.mu.Lock()
	o.waiters[id] = ch
	if o.canAsk {
		o.q.Push(dbVerify(o.srv.cfg.Domain.String(), o.domain, id, key))
	} else {
		o.asks = append(o.asks, verifyAsk{id, key})
		o.startLocked()
	}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.waiters, id)
		o.mu.Unlock()
	}()
	select {
	case ok := <-ch:
		return ok, nil
	case <-ctx.Done():
		return false, fmt.Errorf("verify dialback key with %s: %w", o.domain, ctx.Err())
	}
}

func dbVerify(from, to, id, key string) []byte {
	return []byte("<db:verify from='" + from + "' to='" + to + "' id='" + id + "'>" + key + "</db:verify>")
}

// run connects, authenticates and then serves the stream until it ends,
// retrying a failed connection with backoff before bouncing what waits.
func (o *outgoing) run() {
	var err error
	for attempt := range o.srv.cfg.Attempts {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(1<<(attempt-1)) * time.Second):
			case <-o.srv.ctx.Done():
			}
		}
		err = o.connectAndServe()
		if err == nil {
			break
		}
		o.log.Info("federation connection failed", "attempt", attempt+1, "err", err)
		var pe *peerError
		if errors.Is(err, errNoService) || errors.As(err, &pe) || o.isClosing() {
			break
		}
	}
	o.mu.Lock()
	o.running = false
	o.ready, o.canAsk, o.q, o.conn = false, false, nil, nil
	for id, ch := range o.waiters {
		select {
		case ch <- false:
		default:
		}
		delete(o.waiters, id)
	}
	o.asks = nil
	var failed []*xmlstream.Element
	if err != nil {
		failed, o.pending = o.pending, nil
	}
	if len(o.pending) > 0 {
		// stanzas that arrived while an idle stream was closing
		o.startLocked()
	}
	o.mu.Unlock()
	if len(failed) > 0 {
		bounce := stanza.RemoteServerNotFound.WithText(err.Error())
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			bounce = stanza.RemoteServerTimeout.WithText(err.Error())
		}
		for _, st := range failed {
			o.srv.cfg.Router.Bounce(context.Background(), st, bounce)
		}
	}
	o.srv.dropOutgoing(o)
}

// idle reports whether o has nothing to do (no connection, nothing queued).
func (o *outgoing) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.running && len(o.pending) == 0 && len(o.waiters) == 0
}

func (o *outgoing) isClosing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing
}

// connectAndServe returns nil once an authenticated stream ended normally
// (idle, or closed by the peer after use), else why it failed.
func (o *outgoing) connectAndServe() error {
	ctx, cancel := context.WithTimeout(o.srv.ctx, o.srv.cfg.ConnectTimeout)
	defer cancel()
	targets, err := o.srv.resolve(ctx, o.domain)
	if err != nil {
		return err
	}
	var c *stream.Conn
	for _, t := range targets {
		c, err = o.dial(ctx, t)
		if err == nil {
			break
		}
		o.log.Debug("connect", "addr", t.addr, "err", err)
	}
	if c == nil {
		return err
	}
	q := stream.NewQueue(4<<20, c.Write, c.BatchDeadline(), func(error) { _ = c.Abort() })
	o.mu.Lock()
	o.q, o.conn = q, c
	o.mu.Unlock()
	defer func() { _ = c.Close() }()
	deadline, _ := ctx.Deadline()
	_ = c.SetReadDeadline(deadline)
	if err := o.negotiate(c, q); err != nil {
		q.CloseAfter([]byte("</stream:stream>"))
		return err
	}
	_ = c.SetReadDeadline(time.Time{})
	o.mu.Lock()
	o.ready = true
	for _, st := range o.pending {
		q.Push(encode(st))
	}
	o.pending = nil
	o.lastUsed = time.Now()
	o.mu.Unlock()
	o.log.Info("federation stream ready")
	return o.serve(c, q)
}

func (o *outgoing) dial(ctx context.Context, t target) (*stream.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	conn = stream.Socket(conn)
	c := stream.NewConn(conn, o.srv.cfg.Limits)
	if t.directTLS {
		c = stream.NewConn(tlsClient(conn, o.srv.clientTLS(o.domain)), o.srv.cfg.Limits)
		if err := c.Handshake(ctx); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	return c, nil
}

// next reads the next element of the stream, answering db:verify results
// that arrive in between.
func (o *outgoing) next(c *stream.Conn) (*xmlstream.Element, error) {
	for {
		el, err := c.Next()
		if err != nil {
			return nil, err
		}
		if el.Is(nsDialback, "verify") {
			o.verified(el)
			continue
		}
		if el.Is(xmlstream.NSStream, "error") {
			cond := "undefined-condition"
			if f := el.First(); f != nil {
				cond = f.Name.Local
			}
			return nil, &peerError{domain: o.domain, condition: cond}
		}
		return el, nil
	}
}

func (o *outgoing) verified(el *xmlstream.Element) {
	o.mu.Lock()
	ch := o.waiters[el.Get("id")]
	o.mu.Unlock()
	if ch != nil {
		select {
		case ch <- el.Get("type") == "valid":
		default:
		}
	}
}

// open sends our header and reads the peer's header and features.
func (o *outgoing) open(c *stream.Conn, q *stream.Queue) (id string, features *xmlstream.Element, err error) {
	q.Push(header(o.srv.cfg.Domain.String(), o.domain, ""))
	h, err := c.ReadHeader()
	if err != nil {
		return "", nil, fmt.Errorf("read header: %w", err)
	}
	if h.DefaultNS != xmlstream.NSServer {
		return "", nil, fmt.Errorf("peer stream is not jabber:server")
	}
	if h.Version == "" {
		return "", nil, fmt.Errorf("peer does not speak XMPP 1.0")
	}
	f, err := o.next(c)
	if err != nil {
		return "", nil, err
	}
	if !f.Is(xmlstream.NSStream, "features") {
		return "", nil, fmt.Errorf("expected stream features, got %s", f.Name.Local)
	}
	return h.ID, f, nil
}

// negotiate secures the stream and authenticates us: SASL EXTERNAL when
// the peer offers it, else dialback.
func (o *outgoing) negotiate(c *stream.Conn, q *stream.Queue) error {
	id, f, err := o.open(c, q)
	if err != nil {
		return err
	}
	if !c.IsTLS() {
		if f.Child(nsTLS, "starttls") == nil {
			return fmt.Errorf("%s does not offer TLS", o.domain)
		}
		q.Push([]byte("<starttls xmlns='" + nsTLS + "'/>"))
		q.Flush()
		p, err := o.next(c)
		if err != nil {
			return err
		}
		if !p.Is(nsTLS, "proceed") {
			return fmt.Errorf("starttls refused by %s", o.domain)
		}
		if err := c.StartTLS(o.srv.clientTLS(o.domain), false); err != nil {
			return err
		}
		if id, f, err = o.open(c, q); err != nil {
			return err
		}
	}
	certErr := o.srv.verifyPeer(c.TLSState(), o.domain)
	if certErr != nil && !o.srv.cfg.Dialback {
		return fmt.Errorf("certificate of %s: %w", o.domain, certErr)
	}
	o.mu.Lock()
	o.canAsk = true
	for _, a := range o.asks {
		q.Push(dbVerify(o.srv.cfg.Domain.String(), o.domain, a.id, a.key))
	}
	o.asks = nil
	o.mu.Unlock()

	if mechs := f.Child(nsSASL, "mechanisms"); mechs != nil && hasMechanism(mechs, "EXTERNAL") {
		auth := base64.StdEncoding.EncodeToString([]byte(o.srv.cfg.Domain.String()))
		q.Push([]byte("<auth xmlns='" + nsSASL + "' mechanism='EXTERNAL'>" + auth + "</auth>"))
		r, err := o.next(c)
		if err != nil {
			return err
		}
		if r.Is(nsSASL, "success") {
			c.Restart()
			if _, _, err := o.open(c, q); err != nil {
				return err
			}
			o.log.Info("federation stream authenticated", "method", "SASL EXTERNAL")
			return nil
		}
		o.log.Debug("SASL EXTERNAL refused, trying dialback", "reply", r.String())
	}
	if !o.srv.cfg.Dialback {
		return fmt.Errorf("%s accepted neither our certificate nor (switched off) dialback", o.domain)
	}
	if id == "" {
		return fmt.Errorf("%s gave no stream id for dialback", o.domain)
	}
	key := dialbackKey(o.srv.cfg.Secret, o.domain, o.srv.cfg.Domain.String(), id)
	q.Push([]byte("<db:result from='" + o.srv.cfg.Domain.String() + "' to='" + o.domain + "'>" + key + "</db:result>"))
	for {
		r, err := o.next(c)
		if err != nil {
			return err
		}
		if !r.Is(nsDialback, "result") {
			continue
		}
		if r.Get("type") == "valid" {
			o.log.Info("federation stream authenticated", "method", "dialback")
			return nil
		}
		return fmt.Errorf("%s refused our dialback key (%s)", o.domain, r.Get("type"))
	}
}

func hasMechanism(mechs *xmlstream.Element, name string) bool {
	for _, m := range mechs.Children() {
		if m.Text() == name {
			return true
		}
	}
	return false
}

// serve reads the authenticated stream (dialback answers, errors, the
// close) until the peer closes it or it has been idle too long.
func (o *outgoing) serve(c *stream.Conn, q *stream.Queue) error {
	idle := o.srv.cfg.IdleTimeout
	for {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		_, err := o.next(c)
		if err == nil {
			continue // nothing else is expected on our outgoing stream
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			o.mu.Lock()
			quiet := time.Since(o.lastUsed) >= idle && len(o.waiters) == 0
			if quiet {
				o.ready = false // new stanzas wait for a new stream
			}
			o.mu.Unlock()
			if !quiet && !o.isClosing() {
				continue
			}
		}
		o.mu.Lock()
		o.ready = false
		o.mu.Unlock()
		q.CloseAfter([]byte("</stream:stream>"))
		if errors.Is(err, xmlstream.ErrClosed) || errors.As(err, &ne) {
			return nil
		}
		return err
	}
}

// shutdown closes the stream.
func (o *outgoing) shutdown() {
	o.mu.Lock()
	o.closing = true
	c := o.conn
	o.mu.Unlock()
	if c != nil {
		c.Interrupt()
	}
}
