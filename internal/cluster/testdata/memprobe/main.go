// Command memprobe measures what embedding NATS costs a process, for
// docs/design/cluster.md (the exact commands are there). It starts one of:
//
//	none     nothing (the binary still links nats-server)
//	nats     an embedded nats-server, no JetStream, in-process client only
//	js       cluster.Start without peers: JetStream, unreplicated streams
//	cluster  cluster.Start with -listen and -peers, then EnsureStreams
//
// optionally appends -events events spread over -accounts accounts, then
// every -settle runs a GC and prints the resident set and Go heap figures,
// until SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"casp3r/internal/cluster"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func main() {
	mode := flag.String("mode", "none", "none, nats, js or cluster")
	name := flag.String("name", "a", "node name")
	dir := flag.String("dir", "", "JetStream directory")
	listen := flag.String("listen", "", "route address (cluster mode)")
	peers := flag.String("peers", "", "comma-separated peer route addresses (cluster mode)")
	accounts := flag.Int("accounts", 0, "accounts to append events to")
	events := flag.Int("events", 0, "events to append (spread over -accounts)")
	settle := flag.Duration("settle", 10*time.Second, "wait before measuring")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var shutdown func()
	switch *mode {
	case "none":
		shutdown = func() {}
	case "nats":
		s, err := server.NewServer(&server.Options{DontListen: true, NoSigs: true})
		if err != nil {
			log.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			log.Fatal("nats not ready")
		}
		nc, err := nats.Connect("", nats.InProcessServer(s))
		if err != nil {
			log.Fatal(err)
		}
		shutdown = func() { nc.Close(); s.Shutdown(); s.WaitForShutdown() }
	case "js", "cluster":
		cfg := cluster.Config{Name: *name, Dir: *dir, Logger: logger}
		if *mode == "cluster" {
			cfg.RouteListen, cfg.Peers, cfg.Secret = *listen, strings.Split(*peers, ","), "memprobe"
		}
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		n, err := cluster.Start(sctx, cfg)
		if err == nil {
			err = n.EnsureStreams(sctx)
		}
		cancel()
		t0, data := time.Now(), bytes.Repeat([]byte("x"), 200)
		for i := range *events {
			if err != nil {
				break
			}
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err = n.Append(actx, fmt.Sprintf("user%d@example.org", i%max(*accounts, 1)), data)
			cancel()
		}
		if *events > 0 && err == nil {
			d := time.Since(t0)
			fmt.Printf("appended %d events of 200 bytes to %d accounts in %s (%.0f/s, one at a time)\n",
				*events, *accounts, d.Round(time.Millisecond), float64(*events)/d.Seconds())
		}
		if err != nil {
			log.Fatal(err)
		}
		shutdown = func() { _ = n.Shutdown(context.Background()) }
	default:
		log.Fatalf("unknown mode %q", *mode)
	}

	// Measure after -settle, then every -settle until stopped.
	tick := time.NewTicker(*settle)
	defer tick.Stop()
	for t0 := time.Now(); ; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			shutdown()
			return
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("t=%s mode=%s name=%s %s heap_inuse=%dKB heap_alloc=%dKB stack_inuse=%dKB sys=%dKB goroutines=%d\n",
			time.Since(t0).Round(time.Second), *mode, *name, vmRSS(), ms.HeapInuse>>10, ms.HeapAlloc>>10,
			ms.StackInuse>>10, ms.Sys>>10, runtime.NumGoroutine())
	}
}

func vmRSS() string {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "rss=?"
	}
	var out []string
	for line := range bytes.Lines(status) {
		for _, k := range []string{"VmRSS", "RssAnon", "RssFile"} {
			if rest, ok := bytes.CutPrefix(line, []byte(k+":")); ok {
				v := strings.ReplaceAll(string(bytes.TrimSpace(rest)), " ", "")
				out = append(out, strings.ToLower(k)+"="+v)
			}
		}
	}
	return strings.Join(out, " ")
}
