//go:build integration

package interop

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitRefusesExistingDataFolder: running init twice must not overwrite
// the first server's data, and must say why it refused.
func TestInitRefusesExistingDataFolder(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	cfgPath := filepath.Join(s.dir, "casp3r.toml")
	before, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	r := s.cli(cmdTimeout, "init", "--data", s.dir, "--domain", "other.test", "--listen", s.host)
	if r.code == 0 {
		t.Fatalf("second casp3r init on %s succeeded, want a refusal: %v", s.dir, r)
	}
	if msg := strings.ToLower(r.stderr + r.stdout); !strings.Contains(msg, "exist") && !strings.Contains(msg, "already") {
		t.Errorf("refusal does not say the data folder exists: %v", r)
	}
	after, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatalf("config gone after the refused init: %v", err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("refused init changed %s", cfgPath)
	}
}

// TestVersion: `casp3r version` exits 0 and prints something.
func TestVersion(t *testing.T) {
	t.Parallel()
	r := runCmd(cmdTimeout, "", nil, testEnv.bin, "version")
	if r.code != 0 || strings.TrimSpace(r.stdout+r.stderr) == "" {
		t.Errorf("casp3r version: %v", r)
	}
}
