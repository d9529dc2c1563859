//go:build integration

package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// leafPort is where the full nodes of the leaf test accept leaf nodes.
const leafPort = 7423

// newLeafCluster inits three full nodes a, b and c, each with a leaf
// listener, as newCluster does, and a fourth node "leaf" with
// `casp3r init --leaf --join A:7423 --token T`. c.nodes[3] is the leaf.
// Nothing is started.
func newLeafCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, names: []string{"a", "b", "c", "leaf"}}
	ports := append(slices.Clone(clusterPorts), leafPort)
	var hosts, routes, leaves []string
	for range 3 {
		h := allocHost(t, ports...)
		hosts = append(hosts, h)
		routes = append(routes, fmt.Sprintf("%s:%d", h, routePort))
		leaves = append(leaves, fmt.Sprintf("%s:%d", h, leafPort))
	}
	a := newServer(t, serverOptions{host: hosts[0], initArgs: []string{
		"--cluster-name", "a", "--cluster-listen", routes[0],
		"--cluster-peers", routes[1] + "," + routes[2], "--cluster-leaf-listen", leaves[0]}})
	if !strings.Contains(a.initOut, "--leaf --join "+leaves[0]) {
		t.Errorf("casp3r init of a node with --cluster-leaf-listen does not tell how a leaf node joins:\n%s", a.initOut)
	}
	r := a.cli(cmdTimeout, "cluster", "token", "--data", a.dir)
	token := strings.TrimSpace(r.stdout)
	if r.code != 0 || token == "" {
		t.Fatalf("casp3r cluster token: %v", r)
	}
	c.nodes = append(c.nodes, a)
	for i := 1; i < 3; i++ {
		c.nodes = append(c.nodes, newServer(t, serverOptions{host: hosts[i], initArgs: []string{
			"--join", routes[0], "--token", token, "--cluster-name", c.names[i],
			"--cluster-listen", routes[i], "--cluster-leaf-listen", leaves[i]}}))
	}
	// The leaf names a's leaf address; it learns nothing else from the
	// token but a's, so the two others are given.
	leaf := newServer(t, serverOptions{initArgs: []string{
		"--leaf", "--join", leaves[0], "--token", token, "--cluster-name", "leaf",
		"--cluster-peers", leaves[1] + "," + leaves[2]}})
	if !strings.Contains(leaf.initOut, "leaf node") {
		t.Errorf("casp3r init --leaf does not say the node is a leaf node:\n%s", leaf.initOut)
	}
	if leaf.route != "" {
		t.Errorf("the leaf's [cluster] listen is %q, want none", leaf.route)
	}
	c.nodes = append(c.nodes, leaf)
	// The full nodes stop at once, after the leaf (LIFO): the leaf removes
	// its session entries while they hold a quorum.
	t.Cleanup(func() {
		c.each(func(i int, n *server) {
			if i < 3 {
				n.stop()
			}
		})
		if t.Failed() {
			c.logOwnLines()
		}
	})
	t.Cleanup(leaf.stop)
	return c
}

// leafConnRE matches nats-server's line for a new leaf node connection on
// the leaf: the full node's leaf address comes first.
var leafConnRE = regexp.MustCompile(`msg="([0-9.]+):[0-9]+ - lid:[0-9]+ - Leafnode connection created for account`)

// hub returns the index of the full node the leaf is connected to, from
// the leaf's log, and how many connections the log shows.
func (c *cluster) hub() (int, int) {
	m := leafConnRE.FindAllStringSubmatch(c.nodes[3].log(), -1)
	if len(m) == 0 {
		return -1, 0
	}
	host := m[len(m)-1][1]
	return slices.IndexFunc(c.nodes[:3], func(n *server) bool { return n.host == host }), len(m)
}

// leafStatus accepts a status that lists the three full nodes and the
// leaf, up unless named in down.
func leafStatus(down ...string) func(clusterStatus) error {
	return func(st clusterStatus) error {
		var names []string
		for _, n := range st.Nodes {
			names = append(names, n.Name)
			if want := !slices.Contains(down, n.Name); n.Up != want {
				return fmt.Errorf("node %s: up %v, want %v", n.Name, n.Up, want)
			}
		}
		if got := strings.Join(names, ","); got != "a,b,c,leaf" {
			return fmt.Errorf("lists nodes %s, want a,b,c,leaf", got)
		}
		return nil
	}
}

// TestClusterLeaf: three full nodes and a fourth process as a leaf node.
// Users of the leaf and of a full node subscribe, see each other's presence
// and chat; accounts made through either log in on the other; the leaf
// keeps no copy of the logs; when the full node the leaf is connected to is
// SIGKILLed, the leaf moves to another and goes on serving; all four end
// with the same `casp3r cluster digest`.
func TestClusterLeaf(t *testing.T) {
	c := newLeafCluster(t)
	leaf := c.nodes[3]
	t0 := time.Now()
	for _, n := range c.nodes {
		n.launch()
	}
	for i := range c.nodes {
		c.waitReady(i)
	}
	t.Logf("three full nodes and a leaf started together: all client ports open after %v", time.Since(t0).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(leaf.dir, "cluster", "jetstream")); !os.IsNotExist(err) {
		t.Errorf("the leaf keeps a JetStream folder (a copy of the logs): %v", err)
	}
	c.waitStatus(15*time.Second, "the three full nodes and the leaf up in `cluster status --json` on every node", leafStatus())
	for i, n := range c.nodes {
		t.Logf("node %s: %s", c.names[i], procMem(n.cmd.Process.Pid))
	}

	h, conns := c.hub()
	if h < 0 {
		t.Fatalf("the leaf's log shows no leaf node connection to a full node\n%s", leaf.logTail())
	}
	// Bob lives on a full node the leaf is not connected to, and survives
	// the kill below.
	bobAt, otherAt := (h+1)%3, (h+2)%3
	alice := leaf.addUser("alice", clusterPW)
	bob := c.nodes[h].addUser("bob", clusterPW)
	t.Logf("accounts made on the leaf and on full node %s listed by all four nodes after %v",
		c.names[h], c.waitUsers(alice, bob).Round(time.Millisecond))

	a, b := c.login(3, "alice"), c.login(bobAt, "bob")
	c.befriend(a, b, alice, bob)
	chat(t, a, b, bob, "hello bob, from the leaf")
	chat(t, b, a, alice, "hello alice, from node "+c.names[bobAt])

	// Alice's account, made through the leaf, logs in on a full node; bob's,
	// made on a full node, logs in on the leaf.
	for _, l := range []struct {
		at    int
		local string
	}{{otherAt, "alice"}, {3, "bob"}} {
		rc, _, err := c.loginWithin(l.at, l.local, 10*time.Second)
		if err != nil {
			t.Fatalf("%s cannot log in on node %s: %v", l.local, c.names[l.at], err)
		}
		rc.close()
	}

	// SIGKILL the full node the leaf is connected to.
	c.nodes[h].kill()
	killed := time.Now()
	c.eventually(30*time.Second, "a new leaf node connection in the leaf's log", func() error {
		if h2, n := c.hub(); n == conns || h2 < 0 || h2 == h {
			return fmt.Errorf("the leaf's last connection is to node %d (%d connections)", h2, n)
		}
		return nil
	})
	h2, _ := c.hub()
	t.Logf("node %s killed: the leaf connected to node %s %v later", c.names[h], c.names[h2], time.Since(killed).Round(time.Millisecond))
	took := c.waitStatus(30*time.Second, "node "+c.names[h]+" down, the others up, on every running node", leafStatus(c.names[h]))
	t.Logf("every running node showed node %s down %v after the kill", c.names[h], took.Round(time.Millisecond))
	chat(t, a, b, bob, "from the leaf, after the failover")
	chat(t, b, a, alice, "to the leaf, after the failover")
	t0 = time.Now()
	carol := leaf.addUser("carol", clusterPW)
	c.waitUsers(carol)
	t.Logf("an account made on the leaf after the failover reached the running nodes in %v", time.Since(t0).Round(time.Millisecond))

	// The killed node comes back; the four nodes end with the same data.
	t.Logf("node %s restarted and serving in %v", c.names[h], c.restart(h).Round(time.Millisecond))
	took = c.eventually(catchUpMax, "equal `casp3r cluster digest` on all four nodes", func() error {
		d, err := c.digests()
		if err != nil {
			return err
		}
		if len(d) != 4 || d["a"] != d["b"] || d["b"] != d["c"] || d["c"] != d["leaf"] {
			return fmt.Errorf("digests differ: %v", d)
		}
		return nil
	})
	t.Logf("all four digests equal %v after the restart", took.Round(time.Millisecond))
	a.close()
	b.close()
}

// procMem returns the resident memory lines of a process's status.
func procMem(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:"} {
			if strings.HasPrefix(l, k) {
				out = append(out, strings.Join(strings.Fields(l), " "))
			}
		}
	}
	return strings.Join(out, ", ")
}
