package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"casp3r/internal/certs"
	"casp3r/internal/config"
	"casp3r/internal/server"
	"casp3r/internal/storage/sqlite"
)

func cmdInit(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlagSet("init")
	data := fs.String("data", "", "data folder to create")
	domain := fs.String("domain", "", "the XMPP domain (e.g. chat.example.org)")
	listen := fs.String("listen", "", "IP address every listener binds to (default: all)")
	force := fs.Bool("force", false, "overwrite an existing data folder's config, certificate and key")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("init takes no arguments, got %q", pos[0])
	}
	if *data == "" {
		return usagef("init needs --data DIR")
	}
	if *domain == "" {
		if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			fmt.Fprint(stdout, "Domain of this server (e.g. chat.example.org): ")
			line, _ := bufio.NewReader(stdin).ReadString('\n')
			*domain = strings.TrimSpace(line)
		}
		if *domain == "" {
			return usagef("init needs --domain DOMAIN")
		}
	}
	cfgPath := filepath.Join(*data, config.FileName)
	if _, err := os.Stat(cfgPath); err == nil {
		if !*force {
			return fmt.Errorf("%s already holds a server (%s exists); use --force to overwrite its config and certificate (accounts are kept)", *data, cfgPath)
		}
		if err := os.Remove(cfgPath); err != nil {
			return fmt.Errorf("remove old config: %w", err)
		}
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	if err := config.WriteDefault(*data, *domain, *listen); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	cfg, err := config.Load(*data)
	if err != nil {
		_ = os.Remove(cfgPath)
		return err
	}
	certPath, keyPath := cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key)
	if *force {
		for _, p := range []string{certPath, keyPath} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove old certificate: %w", err)
			}
		}
	}
	if err := certs.GenerateSelfSigned(cfg.Domain, certPath, keyPath); err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	if _, err := server.LoadOrCreateSecret(cfg.Dir); err != nil {
		return err
	}
	db, err := sqlite.Open(context.Background(), cfg.Path(cfg.Storage.Database), nil)
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	fmt.Fprintf(stdout, `Created %s for %s.

Next:
  casp3r user add --data %s admin@%s     create the first account
  casp3r serve --data %s                 run the server

Settings are in %s (every setting is listed there with its default).
`, *data, cfg.Domain, *data, cfg.Domain, *data, cfgPath)
	return nil
}
