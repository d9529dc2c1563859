// Package server wires one CASP3R node: storage, TLS, the router and every
// feature module, the client listeners and the HTTPS endpoint. It is the
// one place where the parts are put together, explicitly, so that a test
// can run several servers in one process.
package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"casp3r/internal/c2s"
	"casp3r/internal/certs"
	"casp3r/internal/config"
	"casp3r/internal/jid"
	"casp3r/internal/mod/disco"
	"casp3r/internal/mod/offline"
	"casp3r/internal/mod/ping"
	"casp3r/internal/mod/register"
	"casp3r/internal/mod/roster"
	"casp3r/internal/mod/vcard"
	"casp3r/internal/mod/version"
	"casp3r/internal/policy"
	"casp3r/internal/router"
	"casp3r/internal/s2s"
	"casp3r/internal/sasl"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/storage/sqlite"
	"casp3r/internal/web"
	"casp3r/internal/xmlstream"
)

// Server is one running node.
type Server struct {
	cfg    *config.Config
	log    *slog.Logger
	domain jid.JID
	db     *sqlite.DB
	certs  *certs.Store
	router *router.Router
	c2s    *c2s.Server
	s2s    *s2s.Server
	policy *policy.Policy
	http   *http.Server
	// cluster is the distributed-server engine, nil on a single node.
	cluster Cluster

	// listenAddr maps a configured port to the address to bind; tests
	// replace it to bind kernel-chosen ports.
	listenAddr func(port int) string

	shutdownOnce sync.Once
	shutdownErr  error

	mu    sync.Mutex
	addrs map[string]net.Addr
	done  chan error
	wg    sync.WaitGroup
}

// Listener names, for Addr.
const (
	ListenerC2S       = "c2s"
	ListenerDirectTLS = "c2s-direct-tls"
	ListenerHTTPS     = "https"
	ListenerS2S       = "s2s"
	ListenerS2STLS    = "s2s-direct-tls"
)

// New opens storage and TLS material and wires the modules. Nothing listens
// until Start.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, ver string, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.Cluster.Enabled() && o.cluster == nil {
		return nil, ErrNoClusterSupport
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	domain, err := jid.Parse(cfg.Domain)
	if err != nil || !domain.IsBare() || domain.Local() != "" {
		return nil, fmt.Errorf("domain %q: not a domain", cfg.Domain)
	}
	st, err := certs.Load(cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key))
	if err != nil {
		return nil, fmt.Errorf("load tls certificate: %w", err)
	}
	secret, err := LoadOrCreateSecret(cfg.Dir)
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, cfg.Path(cfg.Storage.Database), log.With("part", "storage"))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	s := &Server{cfg: cfg, log: log, domain: domain, db: db, certs: st, addrs: make(map[string]net.Addr), done: make(chan error, 4)}
	s.listenAddr = cfg.ListenAddr
	if o.listenAddr != nil {
		s.listenAddr = o.listenAddr
	}

	s.policy = policy.New(db, cfg.Federation, cfg.S2S.Allow, cfg.S2S.Deny)
	s.policy.Logger = log.With("part", "policy")
	if cfg.S2S.CAFile != "" {
		// A mistake in the file should stop the start, not the first
		// federation attempt.
		if _, err := os.Stat(cfg.Path(cfg.S2S.CAFile)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("s2s.ca_file: %w", err)
		}
	}
	s.router = router.New(router.Config{
		Domain:   domain,
		Logger:   log.With("part", "router"),
		Accounts: db,
	})
	s.s2s = s2s.New(s2s.Config{
		Domain:   domain,
		TLS:      st.TLSConfig(),
		Roots:    func() (*x509.CertPool, error) { return peerRoots(cfg) },
		Secret:   secret,
		Dialback: cfg.S2S.Dialback,
		Routes:   cfg.S2S.Routes,
		Limits: xmlstream.Limits{
			MaxStanzaBytes: cfg.S2S.StanzaBytes, MaxDepth: cfg.Limits.Depth, MaxAttrs: cfg.Limits.Attrs,
		},
		IdleTimeout: cfg.S2S.IdleTimeout.Duration,
		Router:      s.router,
		Policy:      s.policy,
		Logger:      log.With("part", "s2s"),
	})
	s.router.SetRemote(s.s2s)
	off := offline.New(s.router, db, cfg.Storage.OfflineMax)
	off.Logger = log.With("part", "offline")
	s.router.SetOfflineStore(off)
	rost := roster.New(s.router, db, off)
	rost.SetLogger(log.With("part", "roster"))
	s.router.SetPresenceHandler(rost)
	s.router.HandleIQ(roster.NS, "query", rost)

	features := []string{roster.NS, ping.NS, version.NS, vcard.NS, "msgoffline"}
	var reg *register.Module
	if cfg.Registration == config.RegistrationOpen {
		reg = register.New(domain, db, cfg.C2S.ScramIterations, true)
		reg.OnRemove = s.kick
		reg.Register(s.router)
		features = append(features, register.NS)
	}
	disco.New(domain, []disco.Identity{{Category: "server", Type: "im", Name: "CASP3R"}}, features).Register(s.router)
	ping.Register(s.router)
	vcard.New(db, 0).Register(s.router)
	version.New(ver).Register(s.router)

	tlsConf := st.TLSConfig()
	c2sConf := c2s.Config{
		Domain:     domain,
		TLS:        tlsConf,
		ServerCert: func() *x509.Certificate { return st.Leaf() },
		RequireTLS: cfg.C2S.RequireTLS,
		SASL: &sasl.Server{
			Lookup:          s.credentials,
			AllowPlain:      cfg.C2S.AllowPlain,
			PrepareUsername: jid.PrepareLocal,
			Secret:          secret,
		},
		Router: s.router,
		PreAuthLimits: xmlstream.Limits{
			MaxStanzaBytes: cfg.Limits.PreAuthStanzaBytes, MaxDepth: min(cfg.Limits.Depth, 8), MaxAttrs: cfg.Limits.Attrs,
		},
		Limits: xmlstream.Limits{
			MaxStanzaBytes: cfg.Limits.StanzaBytes, MaxDepth: cfg.Limits.Depth, MaxAttrs: cfg.Limits.Attrs,
		},
		StanzasPerSecond: cfg.Limits.StanzasPerSecond,
		HandshakeTimeout: cfg.Limits.HandshakeTimeout.Duration,
		StanzaTimeout:    cfg.Limits.StanzaTimeout.Duration,
		MaxConnections:   cfg.C2S.MaxConnections,
		Logger:           log.With("part", "c2s"),
	}
	if reg != nil {
		c2sConf.Register = reg
	}
	s.c2s = c2s.New(c2sConf)
	if err := s.startCluster(ctx, o, secret, rost, off); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// peerRoots returns the certificate authorities trusted for other servers:
// the system's, plus s2s.ca_file.
func peerRoots(cfg *config.Config) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if cfg.S2S.CAFile == "" {
		return roots, nil
	}
	pem, err := os.ReadFile(cfg.Path(cfg.S2S.CAFile))
	if err != nil {
		return nil, fmt.Errorf("s2s.ca_file: %w", err)
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s2s.ca_file %s: no PEM certificates in it", cfg.Path(cfg.S2S.CAFile))
	}
	return roots, nil
}

// credentials looks up an account's SCRAM keys for SASL.
func (s *Server) credentials(ctx context.Context, user string) (sasl.Credentials, error) {
	c, err := s.db.Credentials(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return sasl.Credentials{}, sasl.ErrUnknownUser
	}
	if err != nil {
		return sasl.Credentials{}, fmt.Errorf("load credentials: %w", err)
	}
	return sasl.Credentials{SHA1: sasl.ScramKeys(c.SHA1), SHA256: sasl.ScramKeys(c.SHA256)}, nil
}

// kick closes every session of a deleted account.
func (s *Server) kick(ctx context.Context, user string) {
	bare, err := jid.New(user, s.domain.Domain(), "")
	if err != nil {
		return
	}
	for _, res := range s.router.Resources(bare) {
		res.Session.Close(stanza.StreamErr("not-authorized", "account removed"))
	}
}

// Start binds every listener and serves in the background. A listener that
// cannot bind is an error naming its address.
func (s *Server) Start() error {
	type lis struct {
		name string
		port int
	}
	var want []lis
	want = append(want, lis{ListenerC2S, s.cfg.C2S.Port})
	if s.cfg.C2S.DirectTLSPort != 0 {
		want = append(want, lis{ListenerDirectTLS, s.cfg.C2S.DirectTLSPort})
	}
	if s.cfg.HTTPS.Port != 0 {
		want = append(want, lis{ListenerHTTPS, s.cfg.HTTPS.Port})
	}
	if s.cfg.S2S.Port != 0 {
		want = append(want, lis{ListenerS2S, s.cfg.S2S.Port})
	}
	if s.cfg.S2S.DirectTLSPort != 0 {
		want = append(want, lis{ListenerS2STLS, s.cfg.S2S.DirectTLSPort})
	}
	bound := make(map[string]net.Listener)
	for _, w := range want {
		l, err := net.Listen("tcp", s.listenAddr(w.port))
		if err != nil {
			for _, b := range bound {
				_ = b.Close()
			}
			return fmt.Errorf("listen %s on %s: %w", w.name, s.listenAddr(w.port), err)
		}
		bound[w.name] = l
	}
	s.mu.Lock()
	for name, l := range bound {
		s.addrs[name] = l.Addr()
	}
	s.mu.Unlock()
	s.serve(func() error { return s.c2s.Serve(bound[ListenerC2S], false) })
	if l := bound[ListenerDirectTLS]; l != nil {
		s.serve(func() error { return s.c2s.Serve(l, true) })
	}
	if l := bound[ListenerS2S]; l != nil {
		s.serve(func() error { return s.s2s.Serve(l, false) })
	}
	if l := bound[ListenerS2STLS]; l != nil {
		s.serve(func() error { return s.s2s.Serve(l, true) })
	}
	if l := bound[ListenerHTTPS]; l != nil {
		s.http = s.newHTTP()
		s.serve(func() error { return s.http.ServeTLS(l, "", "") })
	}
	s.log.Info("listening", "c2s", s.Addr(ListenerC2S), "direct_tls", s.Addr(ListenerDirectTLS),
		"s2s", s.Addr(ListenerS2S), "s2s_direct_tls", s.Addr(ListenerS2STLS), "https", s.Addr(ListenerHTTPS))
	return nil
}

func (s *Server) serve(fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := fn()
		if err != nil && !errors.Is(err, c2s.ErrServerClosed) && !errors.Is(err, s2s.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
			s.done <- err
		}
	}()
}

func (s *Server) newHTTP() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/xmpp-websocket", s.c2s.WebSocketHandler())
	web.HostMeta{WebSocketURL: func(r *http.Request) string {
		host := r.Host
		if host == "" {
			host = net.JoinHostPort(s.domain.Domain(), strconv.Itoa(s.cfg.HTTPS.Port))
		}
		return "wss://" + host + "/xmpp-websocket"
	}}.Register(mux)
	tlsConf := s.certs.TLSConfig()
	tlsConf.NextProtos = []string{"http/1.1"}
	return &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.With("part", "https").Handler(), slog.LevelDebug),
	}
}

// Addr returns the bound address of a listener (ListenerC2S, …), or nil.
func (s *Server) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[name]
}

// Done delivers the error of a listener that stopped unexpectedly.
func (s *Server) Done() <-chan error { return s.done }

// Router returns the node's router (for tests and admin tools).
func (s *Server) Router() *router.Router { return s.router }

// Store returns the node's storage (for tests and admin tools).
func (s *Server) Store() *sqlite.DB { return s.db }

// Shutdown closes listeners, ends every stream with </stream:stream>,
// waits for sessions to finish (until ctx expires) and closes storage so
// that everything acknowledged is on disk. Later calls return the first
// call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	var errs []error
	if err := s.c2s.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close client sessions: %w", err))
	}
	if err := s.s2s.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close federation streams: %w", err))
	}
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close https: %w", err))
		}
	}
	s.wg.Wait()
	if s.cluster != nil {
		if err := s.cluster.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("leave cluster: %w", err))
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database: %w", err))
	}
	return errors.Join(errs...)
}
