package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"list", "", []string{"user", "list", "--data", data}, 0, "alice@example.test\nbob@example.test\ncarol@example.test\n"},
		{"passwd", "", []string{"user", "passwd", "--data", data, "--password", "new", "alice@example.test"}, 0, "password changed for alice@example.test"},
		{"passwd unknown", "", []string{"user", "passwd", "--data", data, "--password", "new", "zed@example.test"}, 1, "does not exist"},
		{"del", "", []string{"user", "del", "--data", data, "carol@example.test"}, 0, "deleted carol@example.test"},
		{"del again", "", []string{"user", "del", "--data", data, "carol@example.test"}, 1, "does not exist"},
		{"list after del", "", []string{"user", "list", "--data", data}, 0, "alice@example.test\nbob@example.test\n"},
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
