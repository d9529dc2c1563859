package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"casp3r/internal/config"
	"casp3r/internal/jid"
	"casp3r/internal/sasl"
	"casp3r/internal/storage"
	"casp3r/internal/storage/sqlite"
)

func cmdUser(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("user needs a subcommand: add, del, passwd or list")
	}
	sub := args[0]
	fs := newFlagSet("user " + sub)
	data := fs.String("data", "", "data folder")
	password := fs.String("password", "", "the password (default: ask)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if *data == "" {
		return usagef("user %s needs --data DIR", sub)
	}
	cfg, err := config.Load(*data)
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, cfg.Path(cfg.Storage.Database), nil)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()

	if sub == "list" {
		if len(pos) > 0 {
			return usagef("user list takes no arguments")
		}
		users, err := db.Accounts(ctx)
		if err != nil {
			return fmt.Errorf("list accounts: %w", err)
		}
		for _, u := range users {
			fmt.Fprintf(stdout, "%s@%s\n", u, cfg.Domain)
		}
		return nil
	}
	if len(pos) != 1 {
		return usagef("user %s needs exactly one JID", sub)
	}
	user, err := accountName(pos[0], cfg.Domain)
	if err != nil {
		return err
	}
	switch sub {
	case "add", "passwd":
		pw := *password
		if pw == "" {
			if pw, err = readPassword(stdin, stdout); err != nil {
				return err
			}
		}
		creds, err := newCredentials(pw, cfg.C2S.ScramIterations)
		if err != nil {
			return err
		}
		if sub == "add" {
			err = db.CreateAccount(ctx, user, creds)
			if errors.Is(err, storage.ErrExists) {
				return fmt.Errorf("%s@%s already exists", user, cfg.Domain)
			}
		} else {
			err = db.SetCredentials(ctx, user, creds)
		}
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%s@%s does not exist", user, cfg.Domain)
		}
		if err != nil {
			return fmt.Errorf("%s account: %w", sub, err)
		}
		verb := map[string]string{"add": "created", "passwd": "password changed for"}[sub]
		fmt.Fprintf(stdout, "%s %s@%s\n", verb, user, cfg.Domain)
		return nil
	case "del":
		err := db.DeleteAccount(ctx, user)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%s@%s does not exist", user, cfg.Domain)
		}
		if err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		fmt.Fprintf(stdout, "deleted %s@%s\n", user, cfg.Domain)
		return nil
	}
	return usagef("unknown user subcommand %q (add, del, passwd, list)", sub)
}

// accountName returns the prepared localpart of s, which must be a bare
// JID of domain.
func accountName(s, domain string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Local() == "" || j.Resource() != "" {
		return "", usagef("%q is not an account address like alice@%s", s, domain)
	}
	d, err := jid.PrepareDomain(domain)
	if err != nil {
		return "", fmt.Errorf("configured domain: %w", err)
	}
	if j.Domain() != d {
		return "", fmt.Errorf("%s is not on this server's domain %s", s, domain)
	}
	return j.Local(), nil
}

func newCredentials(pw string, iters int) (storage.Credentials, error) {
	if pw == "" {
		return storage.Credentials{}, errors.New("the password must not be empty")
	}
	c, err := sasl.NewCredentials(pw, iters)
	if err != nil {
		return storage.Credentials{}, fmt.Errorf("derive keys: %w", err)
	}
	return storage.Credentials{
		SHA1:   storage.ScramKeys(c.SHA1),
		SHA256: storage.ScramKeys(c.SHA256),
	}, nil
}

// readPassword reads a password from the terminal (twice, without echo) or
// one line of a non-terminal stdin.
func readPassword(stdin io.Reader, stdout io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stdout, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
