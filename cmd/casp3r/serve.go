package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"casp3r/internal/config"
	"casp3r/internal/server"
	"casp3r/internal/tidy"
)

func cmdServe(args []string, stderr io.Writer) error {
	fs := newFlagSet("serve")
	data := fs.String("data", "", "data folder (made by casp3r init)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("serve takes no arguments, got %q", pos[0])
	}
	if *data == "" {
		return usagef("serve needs --data DIR (create one with casp3r init)")
	}
	cfg, err := config.Load(*data)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	tuneRuntime(cfg.Limits, os.Getenv)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log, versionString(), serverOptions()...)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	log.Info("serving", "domain", cfg.Domain, "version", versionString())
	go tidy.Run(ctx, log)
	select {
	case <-ctx.Done():
	case err = <-srv.Done():
		log.Error("listener failed", "err", err)
	}
	stop()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		return fmt.Errorf("shutdown: %w", serr)
	}
	log.Info("stopped")
	return err
}

// tuneRuntime applies the garbage collector settings of [limits]
// (gc_percent, memory), except those the environment sets (GOGC,
// GOMEMLIMIT), which the Go runtime has applied already.
func tuneRuntime(l config.Limits, getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(l.GCPercent)
	}
	if getenv("GOMEMLIMIT") == "" && l.Memory > 0 {
		debug.SetMemoryLimit(int64(l.Memory))
	}
}
