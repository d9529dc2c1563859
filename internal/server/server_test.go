package server

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"casp3r/internal/certs"
	"casp3r/internal/config"
	"casp3r/internal/sasl"
	"casp3r/internal/storage"
)

const testDomain = "casp3r.test"

// testServer is an in-process node on loopback ports chosen by the kernel.
type testServer struct {
	*Server
	t   *testing.T
	cfg *config.Config
}

// runServer starts a node in a temporary data folder; mutate adjusts the
// configuration first.
func runServer(t *testing.T, mutate func(*config.Config)) *testServer {
	t.Helper()
	return runServerDomain(t, testDomain, mutate)
}

// runServerDomain starts a node serving domain.
func runServerDomain(t *testing.T, domain string, mutate func(*config.Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Dir = dir
	cfg.Domain = domain
	cfg.Listen = "127.0.0.1"
	cfg.C2S.ScramIterations = 4096
	if err := certs.GenerateSelfSigned(cfg.Domain, cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key)); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(context.Background(), &cfg, log, "test")
	if err != nil {
		t.Fatal(err)
	}
	srv.listenAddr = func(int) string { return "127.0.0.1:0" }
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, t: t, cfg: &cfg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return ts
}

func (s *testServer) addr() string { return s.Addr(ListenerC2S).String() }

func (s *testServer) addUser(user, password string) {
	s.t.Helper()
	c, err := sasl.NewCredentials(password, 4096)
	if err != nil {
		s.t.Fatal(err)
	}
	err = s.db.CreateAccount(context.Background(), user, storage.Credentials{SHA1: storage.ScramKeys(c.SHA1), SHA256: storage.ScramKeys(c.SHA256)})
	if err != nil {
		s.t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
