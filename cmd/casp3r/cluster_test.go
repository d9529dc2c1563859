package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"casp3r/internal/config"
	"casp3r/internal/server"
)

// TestClusterInit makes a first node and a joining node with the CLI, and
// checks what the joiner takes from the token, and the errors a user meets.
func TestClusterInit(t *testing.T) {
	dir := t.TempDir()
	first, joiner := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	code, out, errOut := casp3r(t, "", "init", "--data", first, "--domain", "example.test", "--listen", "10.0.0.1",
		"--cluster-name", "a", "--cluster-peers", "10.0.0.2:7422,10.0.0.3:7422")
	if code != 0 {
		t.Fatalf("init first node: %d %s", code, errOut)
	}
	_, tok, _ := strings.Cut(out, "Join token: ")
	tok = strings.TrimSpace(tok)
	if code, again, _ := casp3r(t, "", "cluster", "token", "--data", first); code != 0 || strings.TrimSpace(again) != tok {
		t.Fatalf("cluster token = %d %q, want the token init printed %q", code, again, tok)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string // in the error
	}{
		{"token without join", []string{"--token", tok}, "--join and --token go together"},
		{"damaged token", []string{"--join", "10.0.0.1:7422", "--token", tok[:len(tok)-9]}, "join token: damaged"},
		{"not a token", []string{"--join", "10.0.0.1:7422", "--token", "hello"}, "does not start with"},
		{"other domain", []string{"--join", "10.0.0.1:7422", "--token", tok, "--domain", "other.test"}, "differs from the cluster's domain"},
		{"peers and join", []string{"--join", "10.0.0.1:7422", "--token", tok, "--cluster-peers", "10.0.0.3:7422"}, "--cluster-peers is for the first node"},
		{"bad name", []string{"--join", "10.0.0.1:7422", "--token", tok, "--cluster-name", "Node B"}, "cluster.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"init", "--data", filepath.Join(t.TempDir(), "x"), "--listen", "10.0.0.2"}, tc.args...)
			code, _, errOut := casp3r(t, "", args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want an error containing %q", code, errOut, tc.want)
			}
		})
	}

	code, _, errOut = casp3r(t, "", "init", "--data", joiner, "--listen", "10.0.0.2",
		"--join", "10.0.0.1:7422", "--token", tok, "--cluster-name", "b")
	if code != 0 {
		t.Fatalf("init joining node: %d %s", code, errOut)
	}
	cfg, err := config.Load(joiner)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "example.test" || cfg.Cluster.Name != "b" || cfg.Cluster.Listen != "10.0.0.2:7422" {
		t.Errorf("joiner config: domain %q, cluster %+v", cfg.Domain, cfg.Cluster)
	}
	if want := []string{"10.0.0.1:7422", "10.0.0.3:7422"}; !slices.Equal(cfg.Cluster.Peers, want) {
		t.Errorf("joiner peers %v, want %v (the token's, without itself)", cfg.Cluster.Peers, want)
	}
	a, _ := os.ReadFile(filepath.Join(first, server.SecretFile))
	b, _ := os.ReadFile(filepath.Join(joiner, server.SecretFile))
	if len(a) == 0 || string(a) != string(b) {
		t.Errorf("the joiner's secret differs from the first node's")
	}
	if !clusterSupport {
		code, _, errOut := casp3r(t, "", "serve", "--data", joiner)
		if code != 1 || !strings.Contains(errOut, "built without cluster support") {
			t.Errorf("serve of a cluster node without cluster support: %d %q", code, errOut)
		}
	}
	if code, _, errOut := casp3r(t, "", "cluster", "status", "--data", joiner); code != 1 || !strings.Contains(errOut, "has not run yet") {
		t.Errorf("cluster status of a node never started: %d %q", code, errOut)
	}
}
