package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"casp3r/internal/config"
	"casp3r/internal/policy"
	"casp3r/internal/storage/sqlite"
)

// casp3r runs the CLI in-process and returns its exit code and output.
func casp3r(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestInitAndUsers(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	steps := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantOut  string // substring of stdout (code 0) or stderr
	}{
		{"init", "", []string{"init", "--data", data, "--domain", "example.test", "--listen", "127.0.0.1"}, 0, "Created"},
		{"init again refused", "", []string{"init", "--data", data, "--domain", "example.test"}, 1, "already holds a server"},
		{"check-config", "", []string{"check-config", "--data", data}, 0, "ok (domain example.test)"},
		{"add with flag", "", []string{"user", "add", "--data", data, "--password", "pw1", "alice@example.test"}, 0, "created alice@example.test"},
		{"add from stdin", "pw2\n", []string{"user", "add", "--data", data, "bob@example.test"}, 0, "created bob@example.test"},
		{"flags after jid", "", []string{"user", "add", "carol@example.test", "--data", data, "--password", "x"}, 0, "created carol@example.test"},
		{"add existing", "", []string{"user", "add", "--data", data, "--password", "x", "alice@example.test"}, 1, "already exists"},
		{"wrong domain", "", []string{"user", "add", "--data", data, "--password", "x", "eve@other.test"}, 1, "not on this server's domain"},
		{"not a jid", "", []string{"user", "add", "--data", data, "--password", "x", "no at sign@"}, 2, "not an account address"},
		{"empty password", "\n", []string{"user", "add", "--data", data, "dave@example.test"}, 1, "must not be empty"},
		{"add admin", "", []string{"user", "add", "--data", data, "--password", "x", "--role", "admin", "root@example.test"}, 0, "created root@example.test (admin)"},
		{"add bad role", "", []string{"user", "add", "--data", data, "--password", "x", "--role", "boss", "dave@example.test"}, 2, `"boss" is not a role`},
		{"role flag on passwd", "", []string{"user", "passwd", "--data", data, "--password", "x", "--role", "admin", "alice@example.test"}, 2, "--role is for user add"},
		{"list", "", []string{"user", "list", "--data", data}, 0,
			"alice@example.test member\nbob@example.test member\ncarol@example.test member\nroot@example.test admin\n"},
		{"role limited", "", []string{"user", "role", "--data", data, "bob@example.test", "limited"}, 0, "bob@example.test is now a limited"},
		{"role admin", "", []string{"user", "role", "--data", data, "carol@example.test", "admin"}, 0, "carol@example.test is now an admin"},
		{"role back to member", "", []string{"user", "role", "--data", data, "root@example.test", "member"}, 0, "root@example.test is now a member"},
		{"role bad", "", []string{"user", "role", "--data", data, "bob@example.test", "god"}, 2, `"god" is not a role`},
		{"role unknown account", "", []string{"user", "role", "--data", data, "zed@example.test", "admin"}, 1, "does not exist"},
		{"role missing", "", []string{"user", "role", "--data", data, "bob@example.test"}, 2, "needs a JID and a role"},
		{"list roles", "", []string{"user", "list", "--data", data}, 0,
			"alice@example.test member\nbob@example.test limited\ncarol@example.test admin\nroot@example.test member\n"},
		{"passwd", "", []string{"user", "passwd", "--data", data, "--password", "new", "alice@example.test"}, 0, "password changed for alice@example.test"},
		{"passwd unknown", "", []string{"user", "passwd", "--data", data, "--password", "new", "zed@example.test"}, 1, "does not exist"},
		{"del", "", []string{"user", "del", "--data", data, "carol@example.test"}, 0, "deleted carol@example.test"},
		{"del again", "", []string{"user", "del", "--data", data, "carol@example.test"}, 1, "does not exist"},
		{"list after del", "", []string{"user", "list", "--data", data}, 0, "alice@example.test member\nbob@example.test limited\nroot@example.test member\n"},
		{"recreated account is a member", "", []string{"user", "add", "--data", data, "--password", "x", "carol@example.test"}, 0, "created carol@example.test (member)"},
		{"list after recreate", "", []string{"user", "list", "--data", data}, 0, "carol@example.test member\n"},
		{"unknown command", "", []string{"frobnicate"}, 2, "unknown command"},
		{"serve without data", "", []string{"serve"}, 2, "needs --data"},
		{"serve missing folder", "", []string{"serve", "--data", filepath.Join(data, "nope")}, 1, "casp3r.toml"},
		{"version", "", []string{"version"}, 0, "casp3r "},
	}
	for _, st := range steps {
		code, out, errOut := casp3r(t, st.stdin, st.args...)
		if code != st.wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", st.name, code, st.wantCode, out, errOut)
		}
		text := out
		if code != 0 {
			text = errOut
		}
		if !strings.Contains(text, st.wantOut) {
			t.Errorf("%s: output %q does not contain %q", st.name, text, st.wantOut)
		}
	}
	for _, f := range []string{"casp3r.toml", "tls/cert.pem", "tls/key.pem", "casp3r.db", "keys/server.secret"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("init did not create %s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(data, "tls/key.pem")); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	if code, _, errOut := casp3r(t, "", "init", "--data", data, "--domain", "example.test", "--force"); code != 0 {
		t.Fatalf("init --force: %s", errOut)
	}
	if code, out, _ := casp3r(t, "", "user", "list", "--data", data); code != 0 || !strings.Contains(out, "alice@example.test") {
		t.Fatalf("accounts lost by init --force: %q", out)
	}
}

func TestFederation(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if code, _, errOut := casp3r(t, "", "init", "--data", data, "--domain", "example.test"); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	// The config file: allowlist mode with lists of its own.
	path := filepath.Join(data, "casp3r.toml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for old, repl := range map[string]string{
		`federation = "open"`: `federation = "allowlist"`,
		"allow = []":          `allow = ["friend.test", "both.test"]`,
		"deny = []":           `deny = ["spam.test"]`,
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("config file has no %s", old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout (code 0) or stderr
	}{
		{"list config rules", []string{"list", "--data", data}, 0,
			"mode: allowlist (casp3r.toml)\n" +
				"allow  both.test    config\n" +
				"allow  friend.test  config\n" +
				"deny   spam.test    config\n"},
		{"deny", []string{"deny", "--data", data, "evil.test", "Sub.Example.ORG."}, 0, "denied evil.test\ndenied sub.example.org\n"},
		{"deny overrides config", []string{"deny", "--data", data, "both.test"}, 0, "denied both.test"},
		{"allow", []string{"allow", "--data", data, "pal.test", "friend.test"}, 0, "allowed pal.test\nallowed friend.test\n"},
		{"bad domain changes nothing", []string{"deny", "--data", data, "ok.test", "not a domain"}, 1, `"not a domain" is not a domain name`},
		{"jid is not a domain", []string{"deny", "--data", data, "eve@evil.test"}, 1, "is not a domain name"},
		{"own domain", []string{"deny", "--data", data, "EXAMPLE.test"}, 1, "this server's own domain"},
		{"no domain", []string{"allow", "--data", data}, 2, "needs at least one domain"},
		{"no data", []string{"list"}, 2, "needs --data"},
		{"list takes no domain", []string{"list", "--data", data, "x.test"}, 2, "takes no arguments"},
		{"unknown subcommand", []string{"block", "--data", data, "x.test"}, 2, "unknown federation subcommand"},
		{"no subcommand", nil, 2, "needs a subcommand"},
		{"remove", []string{"remove", "--data", data, "evil.test"}, 0, "removed the rule for evil.test"},
		{"remove again", []string{"remove", "--data", data, "evil.test"}, 1, "evil.test has no rule"},
		{"remove a config rule", []string{"remove", "--data", data, "spam.test"}, 1, "spam.test is denied by the config file (casp3r.toml)"},
		{"list all", []string{"list", "--data", data}, 0,
			"mode: allowlist (casp3r.toml)\n" +
				"deny   both.test        admin (overrides allow in the config)\n" +
				"allow  friend.test      admin\n" +
				"allow  pal.test         admin\n" +
				"deny   spam.test        config\n" +
				"deny   sub.example.org  admin\n"},
	}
	for _, st := range steps {
		code, out, errOut := casp3r(t, "", append([]string{"federation"}, st.args...)...)
		if code != st.wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", st.name, code, st.wantCode, out, errOut)
		}
		text := out
		if code != 0 {
			text = errOut
		}
		if !strings.Contains(text, st.wantOut) {
			t.Errorf("%s: output %q does not contain %q", st.name, text, st.wantOut)
		}
	}

	// What the CLI stored is what a server's policy applies.
	cfg, err := config.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), cfg.Path(cfg.Storage.Database), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pol := policy.New(db, cfg.Federation, cfg.S2S.Allow, cfg.S2S.Deny)
	for domain, want := range map[string]bool{
		"pal.test": true, "muc.pal.test": true, "friend.test": true, "both.test": false,
		"spam.test": false, "evil.test": false, "other.test": false, "x.sub.example.org": false,
	} {
		if got := pol.FederationAllowed(context.Background(), domain); got != want {
			t.Errorf("FederationAllowed(%q) = %v, want %v", domain, got, want)
		}
	}

	// In private mode, allowing a domain says that it has no effect.
	text = strings.Replace(text, `federation = "allowlist"`, `federation = "private"`, 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := casp3r(t, "", "federation", "allow", "--data", data, "new.test"); code != 0 || !strings.Contains(out, `federation is "private"`) {
		t.Errorf("allow in private mode: exit %d, %q", code, out)
	}
}
