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
		"--cluster-name", "a", "--cluster-peers", "10.0.0.2:7422,10.0.0.3:7422", "--cluster-leaf-listen", "10.0.0.1:7423")
	if code != 0 {
		t.Fatalf("init first node: %d %s", code, errOut)
	}
	if !strings.Contains(out, "--leaf --join 10.0.0.1:7423") {
		t.Errorf("init of a node with a leaf listener does not tell how a leaf joins:\n%s", out)
	}
	if cfg, err := config.Load(first); err != nil || cfg.Cluster.LeafListen != "10.0.0.1:7423" {
		t.Fatalf("first node: leaf_listen %q, %v", cfg.Cluster.LeafListen, err)
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
		{"bad leaf listen", []string{"--join", "10.0.0.1:7422", "--token", tok, "--cluster-leaf-listen", "7423"}, "cluster.leaf_listen"},
		{"full node joins a leaf address", []string{"--join", "10.0.0.1:7423", "--token", tok}, "is a leaf address: add --leaf"},
		{"leaf without join", []string{"--leaf", "--cluster-peers", "10.0.0.1:7423"}, "--leaf needs --join"},
		{"leaf with route listen", []string{"--leaf", "--join", "10.0.0.1:7423", "--token", tok, "--cluster-listen", "10.0.0.2:7422"}, "leave --cluster-listen out"},
		{"leaf with leaf listen", []string{"--leaf", "--join", "10.0.0.1:7423", "--token", tok, "--cluster-leaf-listen", "10.0.0.2:7423"}, "--cluster-leaf-listen is for full nodes"},
		{"leaf joins a route address", []string{"--leaf", "--join", "10.0.0.1:7422", "--token", tok}, "is a route address: a leaf node connects to a full node's leaf address (such as 10.0.0.1:7423)"},
		{"leaf with a damaged token", []string{"--leaf", "--join", "10.0.0.1:7423", "--token", tok[:len(tok)-9]}, "join token: damaged"},
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
	if cfg.Cluster.LeafListen != "" {
		t.Errorf("joiner leaf_listen %q without --cluster-leaf-listen", cfg.Cluster.LeafListen)
	}

	t.Run("a bad --force init keeps the node as it was", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other")
		if code, _, errOut := casp3r(t, "", "init", "--data", other, "--domain", "other.test", "--listen", "10.0.0.9"); code != 0 {
			t.Fatalf("init: %d %s", code, errOut)
		}
		cfgBefore, _ := os.ReadFile(filepath.Join(other, config.FileName))
		secretBefore, _ := os.ReadFile(filepath.Join(other, server.SecretFile))
		code, _, errOut := casp3r(t, "", "init", "--data", other, "--force", "--listen", "10.0.0.9",
			"--join", "10.0.0.1:7422", "--token", tok, "--cluster-name", "Node B")
		if code == 0 || !strings.Contains(errOut, "cluster.name") {
			t.Fatalf("init --force with a bad name: %d %q, want an error naming cluster.name", code, errOut)
		}
		cfgAfter, _ := os.ReadFile(filepath.Join(other, config.FileName))
		secretAfter, _ := os.ReadFile(filepath.Join(other, server.SecretFile))
		if len(cfgBefore) == 0 || string(cfgAfter) != string(cfgBefore) {
			t.Error("the failed init changed or removed the node's config")
		}
		if len(secretBefore) == 0 || string(secretAfter) != string(secretBefore) {
			t.Error("the failed init replaced the node's secret")
		}
	})

	t.Run("leaf", func(t *testing.T) {
		leaf := filepath.Join(t.TempDir(), "leaf")
		code, out, errOut := casp3r(t, "", "init", "--data", leaf, "--listen", "192.168.1.9",
			"--leaf", "--join", "10.0.0.2:7423", "--token", tok, "--cluster-name", "pi", "--cluster-peers", "10.0.0.3:7423")
		if code != 0 {
			t.Fatalf("init leaf: %d %s", code, errOut)
		}
		if !strings.Contains(out, "leaf node") {
			t.Errorf("init of a leaf does not say it is one:\n%s", out)
		}
		cfg, err := config.Load(leaf)
		if err != nil {
			t.Fatal(err)
		}
		cl := cfg.Cluster
		if !cl.Leaf || cl.Name != "pi" || cl.Listen != "" || cl.LeafListen != "" || cfg.Domain != "example.test" {
			t.Errorf("leaf config: domain %q, cluster %+v", cfg.Domain, cl)
		}
		// --join first, then the token's leaf address, then --cluster-peers.
		if got, want := cl.Peers, []string{"10.0.0.2:7423", "10.0.0.1:7423", "10.0.0.3:7423"}; !slices.Equal(got, want) {
			t.Errorf("leaf peers %v, want %v", got, want)
		}
		if s, _ := os.ReadFile(filepath.Join(leaf, server.SecretFile)); string(s) != string(a) {
			t.Errorf("the leaf's secret differs from the first node's")
		}
		if code, _, errOut := casp3r(t, "", "cluster", "token", "--data", leaf); code != 1 || !strings.Contains(errOut, "is a leaf node") {
			t.Errorf("cluster token on a leaf: %d %q", code, errOut)
		}
	})

	t.Run("leaf with an old token", func(t *testing.T) {
		// Tokens made before leaf nodes carry no leaf address: --join gives it.
		old, err := encodeJoinToken(joinToken{Domain: "example.test", Secret: a, Peers: []string{"10.0.0.1:7422"}})
		if err != nil {
			t.Fatal(err)
		}
		leaf := filepath.Join(t.TempDir(), "leaf")
		if code, _, errOut := casp3r(t, "", "init", "--data", leaf, "--leaf", "--join", "10.0.0.1:7423", "--token", old); code != 0 {
			t.Fatalf("init leaf: %d %s", code, errOut)
		}
		cfg, err := config.Load(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := cfg.Cluster.Peers, []string{"10.0.0.1:7423"}; !cfg.Cluster.Leaf || !slices.Equal(got, want) {
			t.Errorf("leaf %v, peers %v, want %v", cfg.Cluster.Leaf, got, want)
		}
	})
}

func TestLeafAddr(t *testing.T) {
	for _, tt := range []struct {
		leafListen, advertise, listen string
		want                          string
	}{
		{"", "", "10.0.0.1:7422", ""},
		{"10.0.0.1:7423", "", "10.0.0.1:7422", "10.0.0.1:7423"},
		{"pi.example.org:7423", "", "", "pi.example.org:7423"},
		{"0.0.0.0:7423", "203.0.113.5:7422", "0.0.0.0:7422", "203.0.113.5:7423"},
		{"0.0.0.0:7423", "", "10.0.0.1:7422", "10.0.0.1:7423"},
		{"[::]:7423", "", "[fd00::1]:7422", "[fd00::1]:7423"},
		{":7423", "", "0.0.0.0:7422", ""},
	} {
		cl := config.Cluster{LeafListen: tt.leafListen, Advertise: tt.advertise, Listen: tt.listen}
		if got := leafAddr(cl); got != tt.want {
			t.Errorf("leafAddr(leaf_listen %q, advertise %q, listen %q) = %q, want %q",
				tt.leafListen, tt.advertise, tt.listen, got, tt.want)
		}
	}
}

// TestJoinTokenRouteAddress: the token gives joining nodes the address the
// node advertises, not a listen address they may not reach.
func TestJoinTokenRouteAddress(t *testing.T) {
	tests := []struct {
		listen, advertise, want string
	}{
		{"127.0.0.5:7422", "", "127.0.0.5:7422"},
		{"0.0.0.0:7422", "node-a.example.net:7422", "node-a.example.net:7422"},
	}
	for _, tt := range tests {
		cfg := &config.Config{Dir: t.TempDir(), Domain: "example.net",
			Cluster: config.Cluster{Name: "a", Listen: tt.listen, Advertise: tt.advertise, Peers: []string{"127.0.0.6:7422"}}}
		var out strings.Builder
		if err := clusterToken(cfg, &out); err != nil {
			t.Fatal(err)
		}
		tok, err := decodeJoinToken(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{tt.want, "127.0.0.6:7422"}; !slices.Equal(tok.Peers, want) {
			t.Errorf("listen %q, advertise %q: token peers %q, want %q", tt.listen, tt.advertise, tok.Peers, want)
		}
	}
}
