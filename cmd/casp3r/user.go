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
		return usagef("user needs a subcommand: add, del, passwd, role or list")
	}
	sub := args[0]
	fs := newFlagSet("user " + sub)
	data := fs.String("data", "", "data folder")
	password := fs.String("password", "", "the password (default: ask)")
	role := fs.String("role", "", "the role of a new account: admin, member (default) or limited")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if *data == "" {
		return usagef("user %s needs --data DIR", sub)
	}
	switch {
	case *role != "" && sub != "add":
		return usagef("--role is for user add; use user role JID ROLE to change a role")
	case *role == "":
		*role = storage.RoleMember
	case !storage.ValidRole(*role):
		return usagef("%q is not a role (admin, member or limited)", *role)
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
		roles, err := db.Roles(ctx)
		if err != nil {
			return fmt.Errorf("list accounts: %w", err)
		}
		for _, u := range users {
			r := roles[u]
			if r == "" {
				r = storage.RoleMember // deleted between the two reads
			}
			fmt.Fprintf(stdout, "%s@%s %s\n", u, cfg.Domain, r)
		}
		return nil
	}
	if sub == "role" {
		if len(pos) != 2 {
			return usagef("user role needs a JID and a role (admin, member or limited)")
		}
	} else if len(pos) != 1 {
		return usagef("user %s needs exactly one JID", sub)
	}
	user, err := accountName(pos[0], cfg.Domain)
	if err != nil {
		return err
	}
	switch sub {
	case "role":
		r := pos[1]
		if !storage.ValidRole(r) {
			return usagef("%q is not a role (admin, member or limited)", r)
		}
		err := db.SetRole(ctx, user, r)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%s@%s does not exist", user, cfg.Domain)
		}
		if err != nil {
			return fmt.Errorf("set role: %w", err)
		}
		fmt.Fprintf(stdout, "%s@%s is now %s\n", user, cfg.Domain, article(r))
		return nil
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
			err = db.CreateAccountWithRole(ctx, user, creds, *role)
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
		if sub == "add" {
			fmt.Fprintf(stdout, "created %s@%s (%s)\n", user, cfg.Domain, *role)
		} else {
			fmt.Fprintf(stdout, "password changed for %s@%s\n", user, cfg.Domain)
		}
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
	return usagef("unknown user subcommand %q (add, del, passwd, role, list)", sub)
}

// article returns role with its indefinite article: "an admin", "a member".
func article(role string) string {
	if role == storage.RoleAdmin {
		return "an " + role
	}
	return "a " + role
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
