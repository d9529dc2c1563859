package c2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/sasl"
	"casp3r/internal/stanza"
	"casp3r/internal/stream"
	"casp3r/internal/xmlstream"
)

// Registrar handles in-band registration (XEP-0077) before authentication.
type Registrar interface {
	HandlePreAuth(ctx context.Context, iq *xmlstream.Element) (*xmlstream.Element, error)
}

// Config holds what the client listeners need; package server fills it.
type Config struct {
	Domain     jid.JID
	TLS        *tls.Config              // nil: no TLS (tests only)
	ServerCert func() *x509.Certificate // for tls-server-end-point channel binding
	RequireTLS bool
	SASL       *sasl.Server
	Router     *router.Router
	Register   Registrar // nil: in-band registration off

	PreAuthLimits    xmlstream.Limits // before authentication
	Limits           xmlstream.Limits // after
	StanzasPerSecond int              // sustained rate per session; bursts of twice that
	HandshakeTimeout time.Duration    // from connect to bound resource
	StanzaTimeout    time.Duration    // for a bound client to finish a stanza it began
	MaxConnections   int
	MaxQueueBytes    int // outbound bytes a slow client may have pending
	Logger           *slog.Logger
}

// Server accepts client connections.
type Server struct {
	cfg Config
	log *slog.Logger
	// redirector sends new clients to other nodes (SetRedirector); nil on
	// a single node.
	redirector Redirector

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*Session]struct{}
	work      *stream.Workers
	poll      *stream.Poller // nil where there is none
	refusing  chan struct{}  // bounds the refusals being written at once
	shutdown  bool
	wg        sync.WaitGroup
	nextID    uint64
}

// New returns a client server for cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.StanzaTimeout == 0 {
		cfg.StanzaTimeout = time.Minute
	}
	if cfg.MaxQueueBytes == 0 {
		cfg.MaxQueueBytes = 1 << 20
	}
	if cfg.StanzasPerSecond == 0 {
		cfg.StanzasPerSecond = 200
	}
	if cfg.ServerCert == nil {
		cfg.ServerCert = func() *x509.Certificate { return nil }
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*Session]struct{}),
		work:      stream.NewWorkers(1024, time.Minute),
		refusing:  make(chan struct{}, 64),
	}
	s.poll = stream.NewPoller(s.work.Go)
	return s
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("c2s: server closed")

// Serve accepts connections on l until Shutdown. directTLS selects XEP-0368
// direct TLS instead of STARTTLS.
func (s *Server) Serve(l net.Listener, directTLS bool) error {
	if directTLS && s.cfg.TLS == nil {
		return fmt.Errorf("direct tls needs a tls config")
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	err := stream.Accept(l, s.isShutdown, func(conn net.Conn) {
		if directTLS {
			conn = tls.Server(conn, s.cfg.TLS)
		}
		if !s.startSession(newTCPTransport(conn, s.cfg.PreAuthLimits), directTLS) {
			select {
			case s.refusing <- struct{}{}:
				go func() {
					s.refuse(conn, directTLS)
					<-s.refusing
				}()
			default: // a flood: no goroutine per refusal
				_ = conn.Close()
			}
		}
	}, s.log)
	if err == nil {
		return ErrServerClosed
	}
	return err
}

// refuse answers a connection the server cannot take (full, or shutting
// down) with a stream error, so that the client says why instead of
// reporting a dropped connection.
func (s *Server) refuse(conn net.Conn, directTLS bool) {
	defer conn.Close()
	if directTLS {
		return // a TLS handshake for a refusal is not worth its cost
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	t := newTCPTransport(conn, s.cfg.PreAuthLimits)
	cond := "resource-constraint"
	if s.isShutdown() {
		cond = "system-shutdown"
	}
	_, _ = t.readOpen()
	_ = t.write([][]byte{
		t.openBytes(newStreamID(), s.cfg.Domain.String(), "en"),
		t.encode(nil, stanza.StreamErr(cond, "the server is full; try again later").Element()),
		t.closeBytes(),
	})
	_ = t.close()
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// startSession registers and runs a session; false when the server is
// shutting down or full.
func (s *Server) startSession(t transport, secure bool) bool {
	s.mu.Lock()
	if s.shutdown || (s.cfg.MaxConnections > 0 && len(s.sessions) >= s.cfg.MaxConnections) {
		s.mu.Unlock()
		return false
	}
	s.nextID++
	sess := &Session{
		srv:    s,
		t:      t,
		id:     newStreamID(),
		lang:   "en",
		secure: secure,
	}
	sess.conn = s.nextID
	sess.q = stream.NewQueue(s.cfg.MaxQueueBytes, t.write, t.batchDeadline(), func(err error) {
		sess.logger().Debug("write failed", "err", err)
		_ = t.abort()
	})
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go sess.serve(context.Background(), func() {
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
		s.wg.Done()
	})
	return true
}

// Count returns the number of open client connections.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown stops accepting, closes every stream with system-shutdown and
// waits for the sessions to end or ctx to expire, then cuts what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	for l := range s.listeners {
		_ = l.Close()
	}
	sessions := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.Close(stanza.StreamErr("system-shutdown", ""))
	}
	err := stream.Drain(ctx, &s.wg, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for sess := range s.sessions {
			_ = sess.t.abort()
		}
	})
	s.poll.Close()
	return err
}
