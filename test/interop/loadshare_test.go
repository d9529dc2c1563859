//go:build integration

package interop

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// setClusterKey rewrites `key = …` in the [cluster] table of a node's
// casp3r.toml (the key must be there, as `casp3r init` writes it).
func setClusterKey(t *testing.T, s *server, key, value string) {
	t.Helper()
	path := filepath.Join(s.dir, "casp3r.toml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	table := regexp.MustCompile(`(?m)^\[cluster\]\s*$`).FindIndex(b)
	if table == nil {
		t.Fatalf("%s has no [cluster] table", path)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s*=.*$`)
	loc := re.FindIndex(b[table[1]:])
	if loc == nil {
		t.Fatalf("%s has no %q key in [cluster] (casp3r init writes every key)", path, key)
	}
	at, end := table[1]+loc[0], table[1]+loc[1]
	out := append(append(append([]byte{}, b[:at]...), key+" = "+value...), b[end:]...)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// loadStatus is the part of `casp3r cluster status --json` about load
// sharing.
type loadStatus struct {
	Nodes []struct {
		Name          string `json:"name"`
		Up            bool   `json:"up"`
		Users         int    `json:"users"`
		MaxClients    int    `json:"max_clients"`
		ClientAddress string `json:"client_address"`
	} `json:"nodes"`
}

// startSlixRedirect runs testdata/slixredirect.py (slixclient.py following
// see-other-host) for local@domain on node s's STARTTLS port.
func startSlixRedirect(t *testing.T, s *server, local, password string) *clientProc {
	t.Helper()
	py := needPython(t)
	return startClient(t, "slixmpp "+local, nil, py, filepath.Join("testdata", "slixredirect.py"),
		"--jid", s.jid(local), "--password", password,
		"--host", s.host, "--port", strconv.Itoa(s.c2s),
		"--max-time", strconv.Itoa(clientMaxTime))
}

// TestClusterLoadSharingSlixmpp: node a takes one client ([cluster]
// max_clients = 1). Alice logs in there with slixmpp; Bob's slixmpp,
// pointed at node a too, is sent to node b or c with see-other-host
// (whichever has fewer users), follows it, logs in there, and chats with
// Alice. `casp3r cluster status` shows each node's limit and client address.
func TestClusterLoadSharingSlixmpp(t *testing.T) {
	needPython(t)
	c := newCluster(t)
	a := c.nodes[0]
	setClusterKey(t, a, "max_clients", "1")
	c.startAll()
	const pw = "load-Share-1"
	alice, bob := a.addUser("alice", pw), a.addUser("bob", pw)
	c.waitUsers(alice, bob)

	al := startSlix(t, a, "alice", pw)
	al.waitEvent("session", nil)
	al.ping()

	// Every node knows the others' client addresses, and node a is full.
	want := map[string]string{}
	for i, n := range c.nodes {
		want[c.names[i]] = net.JoinHostPort(n.host, strconv.Itoa(n.c2s))
	}
	took := c.eventually(15*time.Second, "node a full (1 of 1 users) and every client address in `cluster status --json` of node a", func() error {
		st, err := c.status(0)
		if err != nil {
			return err
		}
		var ls loadStatus
		if err := json.Unmarshal([]byte(st.raw), &ls); err != nil {
			return err
		}
		if len(ls.Nodes) != 3 {
			return fmt.Errorf("lists %d nodes: %s", len(ls.Nodes), st.raw)
		}
		for _, n := range ls.Nodes {
			if !n.Up || n.ClientAddress != want[n.Name] {
				return fmt.Errorf("node %s: up %v, client_address %q, want up at %q: %s", n.Name, n.Up, n.ClientAddress, want[n.Name], st.raw)
			}
			if n.Name == "a" && (n.Users != 1 || n.MaxClients != 1) {
				return fmt.Errorf("node a: %d of %d users, want 1 of 1: %s", n.Users, n.MaxClients, st.raw)
			}
		}
		return nil
	})
	t.Logf("node a full and every client address known %v after alice's login", took.Round(time.Millisecond))
	r := a.cli(cmdTimeout, "cluster", "status", "--data", a.dir)
	if r.code != 0 || !strings.Contains(r.stdout, "1 of 1") || !strings.Contains(r.stdout, want["b"]) {
		t.Errorf("casp3r cluster status on node a: want node a's users as \"1 of 1\" and node b's client address %s: %v", want["b"], r)
	}
	t.Logf("casp3r cluster status on node a:\n%s", r.stdout)

	// Bob connects to the full node a and is sent on.
	t0 := time.Now()
	b := startSlixRedirect(t, a, "bob", pw)
	to := b.waitEvent("redirected", nil).str("to")
	if to != want["b"] && to != want["c"] {
		t.Fatalf("bob was sent to %q, want node b (%s) or c (%s)", to, want["b"], want["c"])
	}
	b.waitEvent("session", nil)
	if got := b.waitEvent("server", nil).str("addr"); got != to {
		t.Errorf("bob's session started at %s, want %s where he was sent", got, to)
	}
	t.Logf("slixmpp sent from node a to %s with see-other-host, logged in there %v after starting",
		to, time.Since(t0).Round(time.Millisecond))
	b.ping()

	// They chat across the nodes. Node a learns of bob's session from the
	// session bucket; wait until its heartbeat view counts him on his node.
	c.eventually(15*time.Second, "bob counted on his node in node a's status", func() error {
		st, err := c.status(0)
		if err != nil {
			return err
		}
		var ls loadStatus
		if err := json.Unmarshal([]byte(st.raw), &ls); err != nil {
			return err
		}
		for _, n := range ls.Nodes {
			if n.ClientAddress == to && n.Users == 1 {
				return nil
			}
		}
		return fmt.Errorf("no node at %s with 1 user: %s", to, st.raw)
	})
	const toAlice, toBob = "hello alice, from the node I was sent to", "hello bob, from the full node"
	b.send(map[string]string{"cmd": "send", "to": alice, "body": toAlice})
	al.waitEvent("message", map[string]string{"from": bob, "body": toAlice})
	al.send(map[string]string{"cmd": "send", "to": bob, "body": toBob})
	b.waitEvent("message", map[string]string{"from": alice, "body": toBob})
	b.quit()
	al.quit()
}
