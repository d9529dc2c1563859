package c2s

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/sasl"
	"casp3r/internal/stanza"
	"casp3r/internal/stream"
	"casp3r/internal/xmlstream"
)

// Namespaces of the stream features.
const (
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsRegister = "jabber:iq:register"
	nsRegFeat  = "http://jabber.org/features/iq-register"
	nsSASLCB   = "urn:xmpp:sasl-cb:0"
	// maxAuthFail is the number of failed SASL attempts allowed (RFC 6120
	// §6.4.5: 2 to 5). Five lets clients that try every -PLUS mechanism with
	// a binding we cannot offer (tls-unique on TLS 1.3) reach one that works.
	maxAuthFail = 5
)

// Session is one client connection. The reader goroutine (serve) owns all
// its negotiation state; other goroutines only call Send, Close and JID.
type Session struct {
	srv  *Server
	t    transport
	q    *stream.Queue
	conn uint64 // connection number, for logs
	id   string
	lang string

	// negotiation state, owned by serve
	secure        bool
	authenticated bool
	username      string
	authFails     int
	neg           *sasl.Negotiation
	limit         tokenBucket // stanzas_per_second

	// a bound session parked on the server's poller (see wake)
	ctx    context.Context
	done   func()
	wakeFn func() // s.wake, made once
	paid   bool   // wake took the rate limiter's token for the next read
	// limited: the transport bounds a read that waits by StanzaTimeout
	// itself (see transport.setReadLimit), so wake sets no deadline
	limited bool

	mu     sync.Mutex
	jid    jid.JID // set once bound
	bound  bool
	closed bool
	reason *stanza.StreamError // set by Close from another goroutine
}

var _ router.Session = (*Session)(nil)

// JID returns the bound full JID (zero before binding).
func (s *Session) JID() jid.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jid
}

// Send queues st for the client. Over the queue bound the session is closed:
// a client that does not read its stanzas cannot hold the server's memory.
func (s *Session) Send(st *xmlstream.Element) {
	frame := s.t.encode(nil, st)
	if !s.q.Push(frame) {
		s.Close(stanza.StreamErr("policy-violation", "too many stanzas waiting for a slow client"))
	}
}

// Close ends the session with a stream error from any goroutine: the error
// and the stream close are written, then the connection is closed, which
// ends the reader.
func (s *Session) Close(e *stanza.StreamError) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.reason = e
	s.mu.Unlock()
	var last [][]byte
	if e != nil {
		last = append(last, s.t.encode(nil, e.Element()))
	}
	last = append(last, s.t.closeBytes())
	go func() {
		s.q.CloseAfter(last...)
		s.t.interrupt()
	}()
}

// sendNow writes el and waits until it is on the wire (negotiation steps).
func (s *Session) sendNow(el *xmlstream.Element) {
	s.q.Push(s.t.encode(nil, el))
	s.q.Flush()
}

func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// serve runs the session until the stream ends, then calls done. It is
// the one boundary where Go errors become stream errors.
//
// Negotiation (TLS handshake, SASL, bind) needs a deep stack, and a
// goroutine's stack stays as large as it once grew. So once the resource is
// bound, the rest of the session moves to a fresh goroutine, whose stack
// only grows as far as reading and routing stanzas needs: every idle client
// on a Pi costs that much less.
func (s *Session) serve(ctx context.Context, done func()) {
	_ = s.t.setReadDeadline(time.Now().Add(s.srv.cfg.HandshakeTimeout))
	err := s.negotiate(ctx)
	if err == nil {
		go s.serveBound(ctx, done)
		return
	}
	s.end(ctx, err, done)
}

// serveBound reads stanzas of a bound session until the stream ends.
// Where the server has a poller, the session holds no goroutine while the
// client is idle (see wake); elsewhere this goroutine waits for the
// client, at a shallow depth (readStanzas).
func (s *Session) serveBound(ctx context.Context, done func()) {
	if s.srv.poll != nil && s.t.canPark() {
		s.ctx, s.done = ctx, done
		s.wakeFn = s.wake
		s.wake()
		return
	}
	s.end(ctx, s.readStanzas(ctx), done)
}

// wake reads and handles what the client sent, then parks the session on
// the server's poller, which calls wake again, on a worker, once the
// client sends more (or Close interrupts it). Only one wake of a session
// runs at a time: it ends by parking, or by handing the session to a
// timer (rate limit) or to its end.
func (s *Session) wake() {
	for {
		if s.isClosed() {
			s.endFromWake(errClosedByServer)
			return
		}
		if !s.paid {
			// The rate limit, without a goroutine waiting: come back when
			// the token is due.
			s.paid = true
			if d := s.takeToken(); d > 0 {
				time.AfterFunc(d, s.wakeFn)
				return
			}
		}
		s.paid = false
		// A client that begins a stanza has StanzaTimeout to send the
		// rest (then connection-timeout): it cannot hold the worker by
		// stopping half way.
		if !s.limited {
			_ = s.t.setReadDeadline(time.Now().Add(s.srv.cfg.StanzaTimeout))
		}
		ok, err := s.t.ready()
		if err == nil && ok {
			var el *xmlstream.Element
			if el, err = s.t.next(); err == nil && !s.isClosed() {
				err = s.handle(s.ctx, el)
			}
			if err == nil {
				ok, err = s.t.ready()
			}
		}
		if s.isClosed() {
			err = errClosedByServer
		}
		if err != nil {
			s.endFromWake(err)
			return
		}
		if ok {
			continue // more is buffered
		}
		if !s.limited {
			_ = s.t.setReadDeadline(time.Time{}) // parked, the session waits as long as the client likes
		}
		if s.t.whenReadable(s.srv.poll, s.wakeFn) {
			return // the session is the poller's until the client sends more
		}
		// Not parked (the poller is closed, say): wait on a goroutine.
		go func() { s.end(s.ctx, s.readStanzas(s.ctx), s.done) }()
		return
	}
}

// endFromWake ends the session for wake, which runs on a worker: the
// router forgets the session here, on a stack that is deep already (the
// presence broadcast reads the roster from SQLite), and a fresh goroutine
// writes the end of the stream and closes the connection, which may wait
// for the client. That goroutine's stack then stays small: when many
// clients leave at once, each would otherwise grow a deep one.
func (s *Session) endFromWake(err error) {
	s.srv.cfg.Router.EndSession(context.WithoutCancel(s.ctx), s)
	go s.end(s.ctx, err, s.done)
}

func (s *Session) end(ctx context.Context, err error, done func()) {
	s.finish(err)
	if s.isBound() {
		s.srv.cfg.Router.EndSession(context.WithoutCancel(ctx), s)
	}
	s.q.Flush()
	_ = s.t.close()
	done()
}

// logger returns the session's logger. It is made when something is
// logged, not kept: a logger with attributes costs every idle session
// memory for lines that are rarely written.
func (s *Session) logger() *slog.Logger {
	l := s.srv.log.With("conn", s.conn, "remote", s.t.remoteAddr())
	if j := s.JID(); !j.IsZero() {
		return l.With("jid", j.String())
	}
	return l
}

func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Session) isBound() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// finish turns the error that ended run into what the client sees.
func (s *Session) finish(err error) {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already {
		s.q.Flush()
		return
	}
	if soh, ok := err.(*seeOtherHostError); ok {
		s.logger().Debug("client sent to another node", "to", soh.addr)
		s.q.CloseAfter(s.t.encode(nil, soh.element()), s.t.closeBytes())
		return
	}
	se, sendClose, unexpected := stream.Ending(err)
	switch {
	case unexpected:
		s.logger().Warn("session failed", "err", err)
	case !sendClose:
		s.logger().Debug("connection closed", "err", err)
		s.q.CloseAfter()
		return
	case se == nil:
		s.logger().Debug("stream closed by client")
	}
	var last [][]byte
	if se != nil {
		s.logger().Info("stream error", "condition", se.Condition, "text", se.Text)
		last = append(last, s.t.encode(nil, se.Element()))
	}
	last = append(last, s.t.closeBytes())
	s.q.CloseAfter(last...)
}

// negotiate runs the stream from its header until a resource is bound
// (nil) or the stream ends (the reason).
func (s *Session) negotiate(ctx context.Context) error {
	ask := askNone
	if s.secure {
		ask = askDirectTLS // the first stream of a direct TLS connection
	}
	if err := s.openStream(ask); err != nil {
		return err
	}
	for !s.isBound() {
		el, err := s.t.next()
		if s.isClosed() {
			return errClosedByServer
		}
		if err != nil {
			return err
		}
		if err := s.handle(ctx, el); err != nil {
			return err
		}
	}
	return nil
}

// readStanzas handles the stanzas of a bound session that waits on a
// goroutine of its own (not parked on a poller). The reader only
// waits for the client's next bytes, on the socket (below TLS) and at a
// shallow depth; decrypting, parsing and handling each stanza runs on the
// server's worker pool, in order, so that the deep stacks they need are not
// kept by every idle connection. After each stanza the worker takes in what
// TLS holds already (ready), so that the reader only waits when nothing is
// left to read without the client.
func (s *Session) readStanzas(ctx context.Context) error {
	for {
		err := s.t.waitReadable()
		if err == nil {
			err = s.waitToken(ctx)
		}
		if err == nil {
			s.srv.work.Do(func() {
				var ok bool
				if ok, err = s.t.ready(); err != nil || !ok {
					return // whitespace, or a TLS record still in part
				}
				var el *xmlstream.Element
				if el, err = s.t.next(); err == nil && !s.isClosed() {
					err = s.handle(ctx, el)
				}
				if err == nil {
					_, err = s.t.ready()
				}
			})
		}
		if s.isClosed() {
			return errClosedByServer
		}
		if err != nil {
			return err
		}
	}
}

// takeToken takes a token of the session's rate limit and returns how long
// to wait for it.
func (s *Session) takeToken() time.Duration {
	n := float64(s.srv.cfg.StanzasPerSecond)
	return s.limit.take(time.Now(), n, 2*n)
}

// waitToken takes a token of the rate limit and waits for it.
func (s *Session) waitToken(ctx context.Context) error {
	d := s.takeToken()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errClosedByServer ends the reader of a session that Close has ended.
var errClosedByServer = errors.New("closed by the server")

// openStream reads the client's stream header, answers with ours and the
// features for the current state. ask is set for the connection's first
// stream under TLS, the one a full node redirects (see Redirector).
func (s *Session) openStream(ask redirectAsk) error {
	h, err := s.t.readOpen()
	// Our header goes out before any error, so that a stream error has a
	// stream to travel in (RFC 6120 §4.9.1.2).
	s.q.Push(s.t.openBytes(s.id, s.srv.cfg.Domain.String(), "en"))
	if err != nil {
		return err
	}
	if h.DefaultNS != xmlstream.NSClient && h.DefaultNS != "" {
		return stanza.StreamErr("invalid-namespace", "this port serves jabber:client")
	}
	if h.Version != "" && h.Version < "1.0" || h.Version == "" {
		return stanza.StreamErr("unsupported-version", "XMPP 1.0 is required")
	}
	if h.To == "" {
		return stanza.StreamErr("host-unknown", "the stream header needs a 'to'")
	}
	to, err := jid.Parse(h.To)
	if err != nil || to != s.srv.cfg.Domain {
		return stanza.StreamErr("host-unknown", "this server does not serve "+h.To)
	}
	if h.Lang != "" && len(h.Lang) < 36 {
		s.lang = h.Lang
	}
	if ask != askNone && s.srv.redirector != nil {
		if err := s.redirect(ask == askDirectTLS); err != nil {
			return err
		}
	}
	s.sendNow(s.features())
	return nil
}

func (s *Session) features() *xmlstream.Element {
	f := xmlstream.New(xmlstream.NSStream, "features")
	cfg := &s.srv.cfg
	switch {
	case !s.secure && s.t.canStartTLS() && cfg.TLS != nil:
		tls := xmlstream.New(nsTLS, "starttls")
		if cfg.RequireTLS {
			tls.Append(xmlstream.New(nsTLS, "required"))
		}
		f.Append(tls)
		if cfg.RequireTLS {
			return f
		}
		fallthrough
	case !s.authenticated:
		mechs := xmlstream.New(nsSASL, "mechanisms")
		cs := s.t.tlsState()
		for _, m := range cfg.SASL.Mechanisms(cs, cfg.ServerCert()) {
			mechs.Append(xmlstream.New(nsSASL, "mechanism").SetText(m))
		}
		f.Append(mechs)
		if cs != nil {
			if types := sasl.ChannelBindingTypes(cs, cfg.ServerCert()); len(types) > 0 {
				cb := xmlstream.New(nsSASLCB, "sasl-channel-binding")
				for _, t := range types {
					cb.Append(xmlstream.New(nsSASLCB, "channel-binding", "type", t))
				}
				f.Append(cb)
			}
		}
		if cfg.Register != nil {
			f.Append(xmlstream.New(nsRegFeat, "register"))
		}
	default:
		f.Append(xmlstream.New(nsBind, "bind"))
		f.Append(xmlstream.New(nsSession, "session").Append(xmlstream.New(nsSession, "optional")))
		// Roster versioning (XEP-0237) and pre-approval (RFC 6121 §3.4).
		f.Append(xmlstream.New("urn:xmpp:features:rosterver", "ver"))
		f.Append(xmlstream.New("urn:xmpp:features:pre-approval", "sub"))
	}
	return f
}

// handle processes one top-level element according to the session state.
func (s *Session) handle(ctx context.Context, el *xmlstream.Element) error {
	switch {
	case el.Is(nsTLS, "starttls"):
		return s.handleStartTLS()
	case el.Name.Space == nsSASL:
		return s.handleSASL(ctx, el)
	case !stanza.IsStanza(el, xmlstream.NSClient):
		return stanza.StreamErr("unsupported-stanza-type", "")
	}
	if !s.secure && s.srv.cfg.RequireTLS {
		return stanza.StreamErr("policy-violation", "STARTTLS is required first")
	}
	if !s.authenticated {
		if el.Name.Local == stanza.KindIQ && s.srv.cfg.Register != nil && el.Child(nsRegister, "query") != nil {
			return s.handlePreAuthRegister(ctx, el)
		}
		return stanza.StreamErr("not-authorized", "authenticate first")
	}
	if !s.isBound() {
		return s.handleBind(ctx, el)
	}
	return s.handleStanza(ctx, el)
}

func (s *Session) handleStartTLS() error {
	if s.secure || !s.t.canStartTLS() || s.srv.cfg.TLS == nil {
		return stanza.StreamErr("policy-violation", "TLS is already negotiated")
	}
	s.sendNow(xmlstream.New(nsTLS, "proceed"))
	if err := s.t.startTLS(s.srv.cfg.TLS); err != nil {
		return fmt.Errorf("starttls: %w", err)
	}
	s.secure = true
	return s.openStream(askStartTLS)
}

func (s *Session) handlePreAuthRegister(ctx context.Context, iq *xmlstream.Element) error {
	result, err := s.srv.cfg.Register.HandlePreAuth(ctx, iq)
	if err != nil {
		if reply := stanza.ErrorReply(iq, stanza.StanzaError(err)); reply != nil {
			s.sendNow(reply)
		}
		return nil
	}
	s.sendNow(stanza.Result(iq, result))
	return nil
}

// handleBind handles the iqs allowed between authentication and binding.
func (s *Session) handleBind(ctx context.Context, iq *xmlstream.Element) error {
	if iq.Name.Local != stanza.KindIQ || iq.Get("type") != "set" || iq.Child(nsBind, "bind") == nil {
		return stanza.StreamErr("not-authorized", "bind a resource first")
	}
	resource := iq.Child(nsBind, "bind").Child(nsBind, "resource").Text()
	bare, err := jid.New(s.username, s.srv.cfg.Domain.Domain(), "")
	if err != nil {
		return fmt.Errorf("account jid: %w", err)
	}
	full, err := s.srv.cfg.Router.Bind(s, bare, resource)
	if err != nil {
		s.sendNow(stanza.ErrorReply(iq, stanza.StanzaError(err)))
		return nil
	}
	s.mu.Lock()
	s.jid = full
	s.bound = true
	s.mu.Unlock()
	s.username = "" // a slice of the SASL exchange's text, which it would keep
	_ = s.t.setReadDeadline(time.Time{})
	s.limited = s.t.setReadLimit(s.srv.cfg.StanzaTimeout)
	s.t.setLimits(s.srv.cfg.Limits)
	res := xmlstream.New(nsBind, "bind").Append(xmlstream.New(nsBind, "jid").SetText(full.String()))
	s.sendNow(stanza.Result(iq, res))
	s.logger().Info("session bound")
	return nil
}

// handleStanza checks and stamps a stanza from a bound client and hands it
// to the router.
func (s *Session) handleStanza(ctx context.Context, st *xmlstream.Element) error {
	full := s.JID()
	if from := st.Get("from"); from != "" {
		f, err := jid.Parse(from)
		if err != nil || (f != full && f != full.Bare()) {
			return stanza.StreamErr("invalid-from", "'from' does not match the stream's address")
		}
	}
	st.SetAttr("from", full.String())
	if st.Name.Local == stanza.KindIQ {
		if st.Get("id") == "" {
			return stanza.StreamErr("invalid-xml", "iq without id")
		}
		if st.Child(nsSession, "session") != nil {
			s.Send(stanza.Result(st, nil))
			return nil
		}
		if st.Child(nsBind, "bind") != nil {
			s.Send(stanza.ErrorReply(st, stanza.NotAllowed.WithText("already bound")))
			return nil
		}
	}
	s.srv.cfg.Router.RouteFromClient(ctx, st)
	return nil
}
