// Command idlefloor is the least a server built like CASP3R can hold at
// idle: a static Go binary that links the same SQLite (modernc.org/sqlite)
// and crypto/tls, opens a database in WAL mode with one table, listens
// for TLS on loopback, and waits. Nothing else: no XML, HTTP, TOML, SCRAM
// or routing. Its RSS, against "casp3r serve"'s at idle, shows how much
// of the idle figure the storage and TLS stack cost by themselves
// (docs/PERFORMANCE.md, "Where the idle memory goes"):
//
//	CGO_ENABLED=0 go build -o /tmp/idlefloor ./bench/idlefloor
//	/tmp/idlefloor -db /tmp/floor.db & sleep 3; grep -E 'VmRSS|RssAnon|RssFile' /proc/$!/status; kill $!
package main

import (
	"crypto/tls"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	_ "modernc.org/sqlite"

	"casp3r/internal/certs"
)

func main() {
	db := flag.String("db", "", "SQLite database to open (none: SQLite is linked but not used)")
	addr := flag.String("listen", "127.0.0.1:0", "TLS listener address (empty: none)")
	flag.Parse()
	if err := run(*db, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "idlefloor:", err)
		os.Exit(1)
	}
}

func run(dbPath, addr string) error {
	if dbPath != "" {
		db, err := sql.Open("sqlite", dbPath)
		if err != nil {
			return err
		}
		defer db.Close()
		for _, q := range []string{
			"PRAGMA journal_mode=WAL",
			"CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)",
			"INSERT INTO t(v) VALUES('x')",
		} {
			if _, err := db.Exec(q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			return err
		}
	}
	if addr != "" {
		cert, err := selfSigned()
		if err != nil {
			return fmt.Errorf("certificate: %w", err)
		}
		l, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			return err
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	return nil
}

// selfSigned makes and loads a certificate as "casp3r init" and "casp3r
// serve" do: written as PEM files, then read back.
func selfSigned() (tls.Certificate, error) {
	dir, err := os.MkdirTemp("", "idlefloor")
	if err != nil {
		return tls.Certificate{}, err
	}
	defer os.RemoveAll(dir)
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := certs.GenerateSelfSigned("floor.test", certPath, keyPath); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}
