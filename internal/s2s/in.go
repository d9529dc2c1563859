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

	"golang.org/x/time/rate"

	"casp3r/internal/jid"
	"casp3r/internal/stanza"
	"casp3r/internal/stream"
	"casp3r/internal/xmlstream"
)

// inSession is a stream another server opened to us. The reader goroutine
// (serve) owns the negotiation; dialback verifications run beside it and
// add domains to authed.
type inSession struct {
	srv *Server
	c   *stream.Conn
	q   *stream.Queue
	log *slog.Logger
	id  string

	limit    *rate.Limiter
	saslDone bool // authenticated with SASL EXTERNAL; the stream was restarted
	fromHdr  string

	mu     sync.Mutex
	authed map[string]bool // domains this stream may send from
	closed bool
}

func (s *Server) startIncoming(conn net.Conn) {
	c := stream.NewConn(conn, s.cfg.Limits)
	in := &inSession{srv: s, c: c, id: newStreamID(), authed: make(map[string]bool),
		limit: rate.NewLimiter(rate.Limit(s.cfg.StanzasPerSecond), 2*s.cfg.StanzasPerSecond)}
	in.log = s.log.With("in", conn.RemoteAddr().String())
	in.q = stream.NewQueue(4<<20, c.Write, c.BatchDeadline(), func(error) { _ = c.Abort() })
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.Close()
		return
	}
	s.in[in] = struct{}{}
	s.mu.Unlock()
	s.goTracked(func() {
		defer func() {
			s.mu.Lock()
			delete(s.in, in)
			s.mu.Unlock()
		}()
		in.serve()
	})
}

func (in *inSession) isAuthed(domain string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.authed[domain]
}

// close ends the stream with a stream error from any goroutine.
func (in *inSession) close(e *stanza.StreamError) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.closed = true
	in.mu.Unlock()
	go func() {
		in.q.CloseAfter(xmlstream.AppendXML(nil, e.Element(), xmlstream.NSServer), []byte("</stream:stream>"))
		in.c.Interrupt()
	}()
}

func (in *inSession) serve() {
	defer func() {
		in.q.Flush()
		_ = in.c.Close()
	}()
	_ = in.c.SetReadDeadline(time.Now().Add(in.srv.cfg.ConnectTimeout))
	err := in.run()
	in.mu.Lock()
	already := in.closed
	in.closed = true
	in.mu.Unlock()
	if already {
		return
	}
	se, sendClose, unexpected := stream.Ending(err)
	switch {
	case unexpected:
		in.log.Warn("federation stream failed", "err", err)
	case !sendClose:
		return
	case se == nil:
		in.q.CloseAfter([]byte("</stream:stream>"))
		return
	}
	in.log.Info("federation stream error", "condition", se.Condition, "text", se.Text)
	in.q.CloseAfter(xmlstream.AppendXML(nil, se.Element(), xmlstream.NSServer), []byte("</stream:stream>"))
}

func (in *inSession) run() error {
	if err := in.open(); err != nil {
		return err
	}
	for {
		if in.anyAuthed() {
			_ = in.c.SetReadDeadline(time.Now().Add(in.srv.cfg.IdleTimeout))
		}
		el, err := in.c.Next()
		in.mu.Lock()
		closed := in.closed
		in.mu.Unlock()
		if closed {
			return nil
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && in.anyAuthed() {
				return nil // idle: close quietly
			}
			return err
		}
		if err := in.limit.Wait(in.srv.ctx); err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
		if err := in.handle(el); err != nil {
			return err
		}
	}
}

func (in *inSession) anyAuthed() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.authed) > 0
}

// open reads the peer's header and answers with ours and the features.
func (in *inSession) open() error {
	h, err := in.c.ReadHeader()
	in.q.Push(header(in.srv.cfg.Domain.String(), h.From, in.id))
	if err != nil {
		return err
	}
	if h.DefaultNS != xmlstream.NSServer {
		return stanza.StreamErr("invalid-namespace", "this port serves jabber:server")
	}
	if h.Version == "" {
		return stanza.StreamErr("unsupported-version", "XMPP 1.0 is required")
	}
	if to, err := jid.Parse(h.To); h.To != "" && (err != nil || to != in.srv.cfg.Domain) {
		return stanza.StreamErr("host-unknown", "this server does not serve "+h.To)
	}
	if h.From != "" {
		from, err := jid.Parse(h.From)
		if err != nil || from.Local() != "" || from.Resource() != "" {
			return stanza.StreamErr("invalid-from", "")
		}
		if !in.srv.cfg.Policy.FederationAllowed(context.Background(), from.Domain()) {
			return stanza.StreamErr("policy-violation", "this server does not federate with "+from.Domain())
		}
		in.fromHdr = from.Domain()
	}
	f := xmlstream.New(xmlstream.NSStream, "features")
	switch {
	case !in.c.IsTLS():
		f.Append(xmlstream.New(nsTLS, "starttls").Append(xmlstream.New(nsTLS, "required")))
	case !in.saslDone:
		if in.fromHdr != "" && in.srv.verifyPeer(in.c.TLSState(), in.fromHdr) == nil {
			mechs := xmlstream.New(nsSASL, "mechanisms")
			mechs.Append(xmlstream.New(nsSASL, "mechanism").SetText("EXTERNAL"))
			f.Append(mechs)
		}
		if in.srv.cfg.Dialback {
			f.Append(xmlstream.New(nsDialbackFeat, "dialback").Append(xmlstream.New(nsDialbackFeat, "errors")))
		}
	}
	in.q.Push(xmlstream.AppendXML(nil, f, xmlstream.NSServer))
	return nil
}

func (in *inSession) handle(el *xmlstream.Element) error {
	switch {
	case el.Is(nsTLS, "starttls"):
		if in.c.IsTLS() {
			return stanza.StreamErr("policy-violation", "TLS is already on")
		}
		in.q.Push([]byte("<proceed xmlns='" + nsTLS + "'/>"))
		in.q.Flush()
		if err := in.c.StartTLS(in.srv.serverTLS(), true); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
		return in.open()
	case el.Name.Space == nsSASL:
		return in.handleSASL(el)
	case el.Is(nsDialback, "result"):
		return in.handleResult(el)
	case el.Is(nsDialback, "verify"):
		return in.handleVerify(el)
	case !in.c.IsTLS():
		return stanza.StreamErr("policy-violation", "STARTTLS is required first")
	case stanza.IsStanza(el, xmlstream.NSServer):
		return in.handleStanza(el)
	}
	return stanza.StreamErr("unsupported-stanza-type", "")
}

// handleSASL accepts SASL EXTERNAL when the peer's certificate validates
// for the domain it claims (RFC 6120 §13.7.1.2, RFC 6125).
func (in *inSession) handleSASL(el *xmlstream.Element) error {
	fail := func(cond string) error {
		in.q.Push([]byte("<failure xmlns='" + nsSASL + "'><" + cond + "/></failure>"))
		return nil
	}
	if !in.c.IsTLS() || in.saslDone || !el.Is(nsSASL, "auth") {
		return fail("not-authorized")
	}
	if el.Get("mechanism") != "EXTERNAL" {
		return fail("invalid-mechanism")
	}
	domain := in.fromHdr
	if text := el.Text(); text != "" && text != "=" {
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return fail("incorrect-encoding")
		}
		domain = string(b)
	}
	d, err := jid.Parse(domain)
	if err != nil || d.Local() != "" || d.Resource() != "" || domain == "" {
		return fail("invalid-authzid")
	}
	if in.fromHdr != "" && d.Domain() != in.fromHdr {
		return fail("invalid-authzid")
	}
	if !in.srv.cfg.Policy.FederationAllowed(context.Background(), d.Domain()) {
		return fail("not-authorized")
	}
	if err := in.srv.verifyPeer(in.c.TLSState(), d.Domain()); err != nil {
		in.log.Info("SASL EXTERNAL refused", "domain", d.Domain(), "err", err)
		return fail("not-authorized")
	}
	in.q.Push([]byte("<success xmlns='" + nsSASL + "'/>"))
	in.q.Flush()
	in.mu.Lock()
	in.authed[d.Domain()] = true
	in.mu.Unlock()
	in.saslDone = true
	in.log.Info("federation peer authenticated", "domain", d.Domain(), "method", "SASL EXTERNAL")
	in.c.Restart()
	return in.open()
}

// handleResult handles a peer's dialback key (XEP-0220 §2.1): we ask the
// domain's own server whether it made that key for this stream.
func (in *inSession) handleResult(el *xmlstream.Element) error {
	from, err := jid.Parse(el.Get("from"))
	to := el.Get("to")
	if err != nil || from.Local() != "" || from.Resource() != "" || to != in.srv.cfg.Domain.String() {
		return stanza.StreamErr("improper-addressing", "db:result needs a server from and our domain as to")
	}
	domain := from.Domain()
	reply := func(typ string, extra string) {
		in.q.Push([]byte("<db:result from='" + to + "' to='" + domain + "' type='" + typ + "'>" + extra + "</db:result>"))
	}
	if !in.srv.cfg.Dialback {
		reply("error", "<error type='cancel'><policy-violation xmlns='"+stanza.NSStanzaErrors+"'/></error>")
		return nil
	}
	if !in.srv.cfg.Policy.FederationAllowed(context.Background(), domain) {
		reply("error", "<error type='cancel'><not-allowed xmlns='"+stanza.NSStanzaErrors+"'/></error>")
		return nil
	}
	key := el.Text()
	in.srv.goTracked(func() {
		ctx, cancel := context.WithTimeout(in.srv.ctx, in.srv.cfg.ConnectTimeout)
		defer cancel()
		var ok bool
		o, err := in.srv.outgoingTo(domain)
		if err == nil {
			ok, err = o.verify(ctx, in.id, key)
		}
		if err != nil {
			in.log.Info("dialback verification failed", "domain", domain, "err", err)
			reply("error", "<error type='cancel'><remote-server-not-found xmlns='"+stanza.NSStanzaErrors+"'/></error>")
			return
		}
		if !ok {
			in.log.Warn("forged dialback key refused", "domain", domain)
			reply("invalid", "")
			in.close(stanza.StreamErr("not-authorized", "dialback key not valid for "+domain))
			return
		}
		in.mu.Lock()
		in.authed[domain] = true
		in.mu.Unlock()
		reply("valid", "")
		in.log.Info("federation peer authenticated", "domain", domain, "method", "dialback")
	})
	return nil
}

// handleVerify answers a server asking whether we made a dialback key
// (we are the authoritative server, XEP-0220 §2.2).
func (in *inSession) handleVerify(el *xmlstream.Element) error {
	receiving, originating, id := el.Get("from"), el.Get("to"), el.Get("id")
	if originating != in.srv.cfg.Domain.String() {
		in.q.Push([]byte("<db:verify from='" + originating + "' to='" + receiving + "' id='" + id + "' type='error'><error type='cancel'><item-not-found xmlns='" + stanza.NSStanzaErrors + "'/></error></db:verify>"))
		return nil
	}
	typ := "invalid"
	if checkDialbackKey(in.srv.cfg.Secret, receiving, originating, id, el.Text()) {
		typ = "valid"
	}
	in.q.Push([]byte("<db:verify from='" + originating + "' to='" + receiving + "' id='" + id + "' type='" + typ + "'/>"))
	return nil
}

// handleStanza checks a stanza's addresses against what this stream
// authenticated and delivers it.
func (in *inSession) handleStanza(st *xmlstream.Element) error {
	from, err := jid.Parse(st.Get("from"))
	if err != nil || st.Get("from") == "" {
		return stanza.StreamErr("improper-addressing", "stanza without a valid from")
	}
	if !in.isAuthed(from.Domain()) {
		return stanza.StreamErr("invalid-from", from.Domain()+" is not authenticated on this stream")
	}
	ctx := context.Background()
	// The policy may have changed since the stream authenticated (an
	// admin denying the domain while the server runs): it decides for
	// every stanza, as RouteRemote does for ours.
	if !in.srv.cfg.Policy.FederationAllowed(ctx, from.Domain()) {
		return stanza.StreamErr("policy-violation", "this server does not federate with "+from.Domain())
	}
	to, err := jid.Parse(st.Get("to"))
	if err != nil || st.Get("to") == "" {
		return stanza.StreamErr("improper-addressing", "stanza without a valid to")
	}
	if to.Domain() != in.srv.cfg.Domain.Domain() {
		return stanza.StreamErr("host-unknown", "this server does not serve "+to.Domain())
	}
	st = st.CopyNS(xmlstream.NSServer, xmlstream.NSClient)
	if to.Local() != "" && in.srv.cfg.Policy.Limited(ctx, to.Local()) {
		in.srv.cfg.Router.Bounce(ctx, st, stanza.NotAllowed.WithText("this account does not talk to other servers"))
		return nil
	}
	in.srv.cfg.Router.Route(ctx, st)
	return nil
}
