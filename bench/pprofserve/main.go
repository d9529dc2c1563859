// Command pprofserve runs a CASP3R node like "casp3r serve", with the Go
// profiler (net/http/pprof) on a loopback address, to see where the
// server's memory and CPU go under bench/load:
//
//	go run ./bench/pprofserve -data DIR -pprof 127.0.0.1:6060
//	go tool pprof -sample_index=inuse_space http://127.0.0.1:6060/debug/pprof/heap
//
// It is a measuring aid, not a way to run a server: the profiler adds to
// the binary and to its memory, so RSS figures come from "casp3r serve"
// (bench/run-memory.sh).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"casp3r/internal/config"
	"casp3r/internal/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pprofserve:", err)
		os.Exit(1)
	}
}

func run() error {
	data := flag.String("data", "", "data folder (made by casp3r init)")
	addr := flag.String("pprof", "127.0.0.1:6060", "loopback address of the profiler")
	rate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate: bytes per heap sample (0 keeps Go's default, 1 records every allocation)")
	flag.Parse()
	if *data == "" {
		return errors.New("needs -data DIR")
	}
	if host, _, err := net.SplitHostPort(*addr); err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("-pprof %q: want a loopback IP and port", *addr)
	}
	if *rate > 0 {
		runtime.MemProfileRate = *rate
	}
	cfg, err := config.Load(*data)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" && cfg.Limits.GCPercent > 0 {
		debug.SetGCPercent(cfg.Limits.GCPercent) // as casp3r serve does
	}
	if os.Getenv("GOMEMLIMIT") == "" && cfg.Limits.Memory > 0 {
		debug.SetMemoryLimit(int64(cfg.Limits.Memory))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log, "pprofserve")
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener", "err", err)
		}
	}()
	log.Warn("serving with profiler", "domain", cfg.Domain, "pprof", "http://"+*addr+"/debug/pprof/")

	select {
	case <-ctx.Done():
	case err = <-srv.Done():
		log.Error("listener failed", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if serr := srv.Shutdown(sctx); serr != nil {
		return fmt.Errorf("shutdown: %w", serr)
	}
	return err
}
