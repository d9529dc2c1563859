package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"time"

	"casp3r/internal/jid"
	"casp3r/internal/stanza"
	"casp3r/internal/stream"
	"casp3r/internal/xmlstream"
)

// Router is what s2s needs of the router: delivering what arrives, and
// answering stanzas that cannot go out.
type Router interface {
	Route(ctx context.Context, st *xmlstream.Element)
	Bounce(ctx context.Context, st *xmlstream.Element, err error)
}

// Policy says who may federate.
type Policy interface {
	FederationAllowed(ctx context.Context, domain string) bool
	Limited(ctx context.Context, user string) bool
}

// Config holds what federation needs; package server fills it.
type Config struct {
	Domain jid.JID
	// TLS is our server TLS config; its certificate is also presented to
	// peers when we connect to them (for their SASL EXTERNAL).
	TLS *tls.Config
	// Roots returns the CAs trusted for peers' certificates. It is called
	// once, when the first peer certificate is checked: the system's pool
	// costs megabytes that a server that never federates should not pay.
	Roots    func() (*x509.CertPool, error)
	Secret   []byte // node secret: dialback keys
	Dialback bool   // accept and use dialback where certificates do not validate
	Routes   map[string]string
	Limits   xmlstream.Limits
	// StanzasPerSecond is the sustained rate of one incoming stream (bursts
	// of twice that); a peer carries many users, so it is well above a
	// client's. 0: 2000.
	StanzasPerSecond int
	IdleTimeout      time.Duration
	// ConnectTimeout bounds connecting and authenticating to a peer.
	ConnectTimeout time.Duration
	// Attempts to reach a domain before its queued stanzas bounce.
	Attempts int
	MaxQueue int // stanzas waiting for a domain
	Router   Router
	Policy   Policy
	Logger   *slog.Logger
	Resolver *net.Resolver // nil: net.DefaultResolver
}

// Server runs incoming and outgoing server-to-server streams.
type Server struct {
	cfg      Config
	log      *slog.Logger
	resolver *net.Resolver

	// ctx ends when Shutdown starts: dials, handshakes, dialback
	// verifications and retry waits stop at once.
	ctx    context.Context
	cancel context.CancelFunc

	rootsOnce sync.Once
	roots     *x509.CertPool
	rootsErr  error

	mu        sync.Mutex
	routes    map[string]string // cfg.Routes, copied; SetRoute adds to it
	out       map[string]*outgoing
	in        map[*inSession]struct{}
	listeners map[net.Listener]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// New returns a federation server for cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = 3
	}
	if cfg.StanzasPerSecond == 0 {
		cfg.StanzasPerSecond = 2000
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = 1000
	}
	r := cfg.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		ctx:       ctx,
		cancel:    cancel,
		cfg:       cfg,
		log:       cfg.Logger,
		resolver:  r,
		routes:    maps.Clone(cfg.Routes),
		out:       make(map[string]*outgoing),
		in:        make(map[*inSession]struct{}),
		listeners: make(map[net.Listener]struct{}),
	}
}

// SetRoute makes domain reachable at addr (host:port), like a static
// route of the configuration, for the dials that start from now on.
func (s *Server) SetRoute(domain, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.routes == nil {
		s.routes = make(map[string]string)
	}
	s.routes[domain] = addr
}

// route returns the static route to domain, if there is one.
func (s *Server) route(domain string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr, ok := s.routes[domain]
	return addr, ok
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("s2s: server closed")

// errNotAllowed is federation refused by policy.
var errNotAllowed = stanza.NotAllowed.WithText("this server does not federate with that domain")

// RouteRemote sends st to another domain (router.Remote). It returns at
// once; a stanza that cannot be delivered later is bounced to its sender.
func (s *Server) RouteRemote(ctx context.Context, st *xmlstream.Element) error {
	to, err := jid.Parse(st.Get("to"))
	if err != nil {
		return stanza.JIDMalformed
	}
	from, err := jid.Parse(st.Get("from"))
	if err != nil {
		return stanza.JIDMalformed
	}
	if from.Local() != "" && st.Get("type") != "error" && s.cfg.Policy.Limited(ctx, from.Local()) {
		return stanza.NotAllowed.WithText("your account may not talk to other servers")
	}
	domain := to.Domain()
	if !s.cfg.Policy.FederationAllowed(ctx, domain) {
		return errNotAllowed
	}
	o, err := s.outgoingTo(domain)
	if err != nil {
		return err
	}
	return o.send(st)
}

func (s *Server) outgoingTo(domain string) (*outgoing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, stanza.RemoteServerTimeout.WithText("server shutting down")
	}
	o := s.out[domain]
	if o == nil {
		o = newOutgoing(s, domain)
		s.out[domain] = o
	}
	return o, nil
}

// dropOutgoing forgets o once it has nothing left to do.
func (s *Server) dropOutgoing(o *outgoing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out[o.domain] == o && o.idle() {
		delete(s.out, o.domain)
	}
}

// Serve accepts incoming server streams on l until Shutdown.
func (s *Server) Serve(l net.Listener, directTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	err := stream.Accept(l, s.isClosed, func(conn net.Conn) {
		if directTLS {
			conn = tls.Server(conn, s.serverTLS())
		}
		s.startIncoming(conn)
	}, s.log)
	if err == nil {
		return ErrServerClosed
	}
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// serverTLS is our TLS config for incoming streams: it asks for the peer's
// certificate (for SASL EXTERNAL) and checks it itself.
func (s *Server) serverTLS() *tls.Config {
	c := s.cfg.TLS.Clone()
	c.ClientAuth = tls.RequestClientCert
	c.NextProtos = []string{"xmpp-server"}
	return c
}

// clientTLS is our TLS config for outgoing streams to domain. Verification
// is ours (verifyPeer), since a certificate that does not validate may
// still be accepted with dialback.
func (s *Server) clientTLS(domain string) *tls.Config {
	return &tls.Config{
		ServerName:         domain,
		InsecureSkipVerify: true, // checked by verifyPeer
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"xmpp-server"},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cfg.TLS.GetCertificate(&tls.ClientHelloInfo{ServerName: s.cfg.Domain.Domain()})
		},
	}
}

// verifyPeer checks a peer's certificate chain for domain against the
// trusted roots (RFC 6125 via crypto/x509).
func (s *Server) verifyPeer(cs *tls.ConnectionState, domain string) error {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	s.rootsOnce.Do(func() {
		if s.cfg.Roots != nil {
			s.roots, s.rootsErr = s.cfg.Roots()
		}
		if s.roots == nil && s.rootsErr == nil {
			s.roots = x509.NewCertPool()
		}
	})
	if s.rootsErr != nil {
		return fmt.Errorf("trusted certificates: %w", s.rootsErr)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         s.roots,
		Intermediates: inter,
		DNSName:       domain,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// Shutdown stops accepting, closes every stream with </stream:stream> and
// waits for them (until ctx expires). Stanzas still queued bounce.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		_ = l.Close()
	}
	ins := make([]*inSession, 0, len(s.in))
	for in := range s.in {
		ins = append(ins, in)
	}
	outs := make([]*outgoing, 0, len(s.out))
	for _, o := range s.out {
		outs = append(outs, o)
	}
	s.mu.Unlock()
	for _, in := range ins {
		in.close(stanza.StreamErr("system-shutdown", ""))
	}
	for _, o := range outs {
		o.shutdown()
	}
	return stream.Drain(ctx, &s.wg, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for in := range s.in {
			_ = in.c.Abort()
		}
	})
}

// go runs fn as a tracked goroutine.
func (s *Server) goTracked(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// header returns our stream header.
func header(from, to, id string) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='"+xmlstream.NSStream+
		"' xmlns:db='"+nsDialback+"' version='1.0' from='"...)
	b = append(b, from...)
	if to != "" {
		b = append(b, "' to='"...)
		b = append(b, to...)
	}
	if id != "" {
		b = append(b, "' id='"...)
		b = append(b, id...)
	}
	return append(b, "'>"...)
}

// encode writes a stanza for a server stream: jabber:client (our internal
// namespace) becomes jabber:server.
func encode(st *xmlstream.Element) []byte {
	if st.Name.Space == xmlstream.NSClient {
		st = st.CopyNS(xmlstream.NSClient, xmlstream.NSServer)
	}
	return xmlstream.AppendXML(nil, st, xmlstream.NSServer)
}
