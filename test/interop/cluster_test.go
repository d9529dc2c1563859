//go:build integration

package interop

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cluster tests: three `casp3r serve` processes on three 127.0.0.x addresses
// act as one XMPP domain (docs: the [cluster] section, `casp3r cluster`).
// They are real processes killed with SIGKILL, so they do not run in
// parallel with each other: on a 2-core CI machine, the failover figures
// they check would otherwise measure the machine.

const (
	// routePort is where every node accepts cluster routes (on its own address).
	routePort = 7422
	// clusterReadyTimeout bounds the wait for a node to open its client port:
	// a clustered node waits for a quorum first (at most 2 minutes).
	clusterReadyTimeout = 90 * time.Second
	// clusterPW is the password of every account the cluster tests make.
	clusterPW = "cluster-Secret-1"
	// stanzaWait bounds a raw client's wait for one stanza.
	stanzaWait = 15 * time.Second
	// failoverMax is how long after a node's death the survivors may take to
	// work again (spec: sessions offline within ~5 s, writes within 10 s).
	failoverMax = 10 * time.Second
	// catchUpMax bounds how long a restarted node may take to hold the same
	// state as the others.
	catchUpMax = 60 * time.Second
)

// clusterPorts are the ports one node listens on: c2s, s2s, HTTPS, routes.
var clusterPorts = []int{5222, 5223, 5269, 5270, 5443, routePort}

// cluster is three initialised nodes named a, b and c.
type cluster struct {
	t     *testing.T
	nodes []*server
	names []string // names[i] is the --cluster-name of nodes[i]
}

// newCluster inits three nodes: a with --cluster-peers naming the other two,
// then b and c with --join and the token `casp3r cluster token` prints on a.
// Nothing is started; see startAll.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, names: []string{"a", "b", "c"}}
	var hosts, routes []string
	for range 3 {
		h := allocHost(t, clusterPorts...)
		hosts = append(hosts, h)
		routes = append(routes, fmt.Sprintf("%s:%d", h, routePort))
	}
	a := newServer(t, serverOptions{host: hosts[0], initArgs: []string{
		"--cluster-name", "a", "--cluster-listen", routes[0],
		"--cluster-peers", routes[1] + "," + routes[2]}})
	if !strings.Contains(a.initOut, "Join token: ") {
		t.Errorf("casp3r init of the first node printed no %q line:\n%s", "Join token: TOKEN", a.initOut)
	}
	r := a.cli(cmdTimeout, "cluster", "token", "--data", a.dir)
	token := strings.TrimSpace(r.stdout)
	if r.code != 0 || token == "" || strings.ContainsAny(token, " \n") {
		t.Fatalf("casp3r cluster token: want the token alone on one line, got %v", r)
	}
	c.nodes = append(c.nodes, a)
	for i := 1; i < 3; i++ {
		n := newServer(t, serverOptions{host: hosts[i], initArgs: []string{
			"--join", routes[0], "--token", token,
			"--cluster-name", c.names[i], "--cluster-listen", routes[i]}})
		if n.domain != a.domain {
			t.Fatalf("node %s joined with the token has domain %q in its config, want %q (from the token)",
				c.names[i], n.domain, a.domain)
		}
		c.nodes = append(c.nodes, n)
	}
	for i, n := range c.nodes {
		if n.route != routes[i] {
			t.Fatalf("node %s: [cluster] listen = %q in its config, want %q", c.names[i], n.route, routes[i])
		}
	}
	// Stop all nodes at once (before each node's own cleanup, which then
	// has nothing left to stop): one by one, the last ones would lose
	// their quorum while waiting.
	t.Cleanup(func() {
		c.each(func(_ int, n *server) { n.stop() })
		if t.Failed() {
			c.logOwnLines()
		}
	})
	return c
}

// logOwnLines logs the last lines of every node's serve logs that are not
// nats-server's (which fill the tails the harness shows).
func (c *cluster) logOwnLines() {
	for i, n := range c.nodes {
		for run := 1; run <= n.runs; run++ {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(n.dir), fmt.Sprintf("serve-%d.log", run)))
			if err != nil {
				continue
			}
			var own []string
			for _, l := range strings.Split(string(b), "\n") {
				if l != "" && !strings.Contains(l, "component=nats") {
					own = append(own, l)
				}
			}
			if len(own) > 80 {
				own = own[len(own)-80:]
			}
			c.t.Logf("node %s (%s), run %d, CASP3R lines of its log:\n%s", c.names[i], n.host, run, strings.Join(own, "\n"))
		}
	}
}

// each runs f on every node concurrently and waits. f must not call
// t.Fatal (t.Error is fine).
func (c *cluster) each(f func(i int, n *server)) {
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { f(i, n) })
	}
	wg.Wait()
}

// startAll starts the nodes together, as a new cluster must be, and waits
// until every one opened its client port.
func (c *cluster) startAll() {
	c.t.Helper()
	t0 := time.Now()
	for _, n := range c.nodes {
		n.launch()
	}
	for i := range c.nodes {
		c.waitReady(i)
	}
	c.t.Logf("cluster of 3 formed: all client ports open %v after starting the nodes", time.Since(t0).Round(time.Millisecond))
}

// waitReady waits until node i opened its client port and logged that it
// joined the cluster.
func (c *cluster) waitReady(i int) {
	c.t.Helper()
	n := c.nodes[i]
	if err := waitPort(n.host, n.c2s, clusterReadyTimeout, n.exited); err != nil {
		c.t.Fatalf("node %s (casp3r serve, run %d) never opened its client port, so no user could connect: %v\n%s",
			c.names[i], n.runs, err, n.logTail())
	}
	if !pollUntil(5*time.Second, func() bool { return strings.Contains(n.log(), `msg="cluster joined"`) }) {
		c.t.Errorf("node %s opened its client port but its log has no info line msg=\"cluster joined\"\n%s",
			c.names[i], n.logTail())
	}
}

// restart starts node i again on its data folder and waits until it serves.
func (c *cluster) restart(i int) time.Duration {
	c.t.Helper()
	t0 := time.Now()
	c.nodes[i].launch()
	c.waitReady(i)
	return time.Since(t0)
}

// index returns the position of the node called name, or -1.
func (c *cluster) index(name string) int { return slices.Index(c.names, name) }

// clusterStatus is what `casp3r cluster status --json` prints.
type clusterStatus struct {
	Self      string `json:"self"`
	Updated   string `json:"updated"`
	LogLeader string `json:"log_leader"`
	Nodes     []struct {
		Name    string `json:"name"`
		Up      bool   `json:"up"`
		Users   int    `json:"users"`
		Applied int64  `json:"applied"`
		Lag     int64  `json:"lag"`
	} `json:"nodes"`
	raw string
}

// status runs `casp3r cluster status --json` on node i.
func (c *cluster) status(i int) (clusterStatus, error) {
	var st clusterStatus
	r := c.nodes[i].cli(cmdTimeout, "cluster", "status", "--data", c.nodes[i].dir, "--json")
	st.raw = strings.TrimSpace(r.stdout)
	if r.code != 0 {
		return st, fmt.Errorf("casp3r cluster status --json on node %s: %v", c.names[i], r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		return st, fmt.Errorf("casp3r cluster status --json on node %s printed no status JSON (%v): %s", c.names[i], err, r.stdout)
	}
	if st.Self != c.names[i] {
		return st, fmt.Errorf("casp3r cluster status on node %s says self=%q", c.names[i], st.Self)
	}
	return st, nil
}

// running lists the indexes of the nodes whose serve process runs.
func (c *cluster) running() []int {
	var idx []int
	for i, n := range c.nodes {
		if n.cmd != nil {
			idx = append(idx, i)
		}
	}
	return idx
}

// waitStatus polls `cluster status --json` on every running node until ok
// accepts every node's view, for at most d. It returns how long that took.
func (c *cluster) waitStatus(d time.Duration, what string, ok func(st clusterStatus) error) time.Duration {
	c.t.Helper()
	return c.eventually(d, what, func() error {
		for _, i := range c.running() {
			st, err := c.status(i)
			if err == nil {
				err = ok(st)
			}
			if err != nil {
				return fmt.Errorf("node %s: %w\nits status: %s", c.names[i], err, st.raw)
			}
		}
		return nil
	})
}

// allUp accepts a status that lists the three nodes up, with users[name]
// sessions each (when users is not nil) and lag 0 (when zeroLag).
func allUp(users map[string]int, zeroLag bool) func(clusterStatus) error {
	return func(st clusterStatus) error {
		if len(st.Nodes) != 3 {
			return fmt.Errorf("lists %d nodes, want 3", len(st.Nodes))
		}
		for _, n := range st.Nodes {
			switch {
			case !n.Up:
				return fmt.Errorf("node %s is not up", n.Name)
			case users != nil && n.Users != users[n.Name]:
				return fmt.Errorf("node %s has %d users, want %d", n.Name, n.Users, users[n.Name])
			case zeroLag && n.Lag != 0:
				return fmt.Errorf("node %s lags %d behind the log leader", n.Name, n.Lag)
			}
		}
		return nil
	}
}

// logLeader waits until every running node names the same log leader and
// returns that node's index.
func (c *cluster) logLeader() int {
	c.t.Helper()
	var leader int
	c.eventually(30*time.Second, "all nodes up and agreeing on one log_leader", func() error {
		names := map[string]string{}
		for _, i := range c.running() {
			st, err := c.status(i)
			if err == nil {
				err = allUp(nil, false)(st)
			}
			if err != nil {
				return fmt.Errorf("node %s: %w\nits status: %s", c.names[i], err, st.raw)
			}
			names[c.names[i]] = st.LogLeader
		}
		l := names[c.names[c.running()[0]]]
		for _, v := range names {
			if v != l {
				return fmt.Errorf("nodes name different log leaders: %v", names)
			}
		}
		if leader = c.index(l); leader < 0 {
			return fmt.Errorf("log_leader %q is no node of the cluster: %v", l, names)
		}
		return nil
	})
	return leader
}

// digests runs `casp3r cluster digest` on every running node.
func (c *cluster) digests() (map[string]string, error) {
	out := map[string]string{}
	for _, i := range c.running() {
		r := c.nodes[i].cli(cmdTimeout, "cluster", "digest", "--data", c.nodes[i].dir)
		d := strings.TrimSpace(r.stdout)
		if r.code != 0 || d == "" {
			return out, fmt.Errorf("casp3r cluster digest on node %s: %v", c.names[i], r)
		}
		out[c.names[i]] = d
	}
	return out, nil
}

// waitSameState waits until all three nodes run, print the same digest and
// show lag 0: a restarted node has caught up. It returns how long it took.
func (c *cluster) waitSameState() time.Duration {
	c.t.Helper()
	if n := len(c.running()); n != 3 {
		c.t.Fatalf("waitSameState with %d nodes running", n)
	}
	took := c.eventually(catchUpMax, "equal `casp3r cluster digest` on all three nodes", func() error {
		d, err := c.digests()
		if err != nil {
			return err
		}
		if d["a"] != d["b"] || d["b"] != d["c"] {
			return fmt.Errorf("digests differ: %v", d)
		}
		return nil
	})
	c.waitStatus(15*time.Second, "lag 0 everywhere once digests are equal", allUp(nil, true))
	return took
}

// waitUsers waits until `casp3r user list` lists every jid on every running
// node: an account made on one node reached the others.
func (c *cluster) waitUsers(jids ...string) time.Duration {
	c.t.Helper()
	return c.eventually(15*time.Second, fmt.Sprintf("accounts %v listed by `casp3r user list` on every node", jids), func() error {
		for _, i := range c.running() {
			n := c.nodes[i]
			r := n.cli(cmdTimeout, "user", "list", "--data", n.dir)
			if r.code != 0 {
				return fmt.Errorf("casp3r user list on node %s: %v", c.names[i], r)
			}
			for _, j := range jids {
				if !strings.Contains(r.stdout, j) {
					return fmt.Errorf("node %s does not list %s:\n%s", c.names[i], j, r.stdout)
				}
			}
		}
		return nil
	})
}

// eventually calls check every 250 ms until it returns nil, for at most d,
// and returns how long that took. At the deadline it fails the test with
// check's last complaint.
func (c *cluster) eventually(d time.Duration, what string, check func() error) time.Duration {
	c.t.Helper()
	t0 := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return time.Since(t0)
		}
		if time.Since(t0) > d {
			c.t.Fatalf("no %s after %v; last: %v", what, d, err)
		}
		<-tick.C
	}
}

// login connects local to node i, fetches the roster and sends initial
// presence, as an XMPP app does.
func (c *cluster) login(i int, local string) *rawClient {
	c.t.Helper()
	n := c.nodes[i]
	rc, err := dialRaw(n.host, n.c2s, n.domain, local, clusterPW, stanzaWait)
	if err != nil {
		c.t.Fatalf("%s cannot log in on node %s: %v", local, c.names[i], err)
	}
	c.t.Cleanup(func() { rc.conn.Close() })
	if _, err := rosterItems(rc); err != nil {
		c.t.Fatalf("%s on node %s: roster get: %v", local, c.names[i], err)
	}
	if err := rc.write("<presence/>"); err != nil {
		c.t.Fatal(err)
	}
	return rc
}

// loginWithin retries a login of local on node i until it works or d has
// passed. It returns the client (nil on failure), when the login succeeded
// and the last error.
func (c *cluster) loginWithin(i int, local string, d time.Duration) (*rawClient, time.Time, error) {
	n := c.nodes[i]
	deadline := time.Now().Add(d)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		rc, err := dialRaw(n.host, n.c2s, n.domain, local, clusterPW, 5*time.Second)
		if err == nil {
			c.t.Cleanup(func() { rc.conn.Close() })
			return rc, time.Now(), nil
		}
		if time.Now().After(deadline) {
			return nil, time.Time{}, err
		}
		<-tick.C
	}
}

// rosterItems fetches the roster: contact JID → subscription.
func rosterItems(rc *rawClient) (map[string]string, error) {
	rc.nextID++
	res, err := rc.iq(fmt.Sprintf(`<iq type='get' id='roster%d'><query xmlns='jabber:iq:roster'/></iq>`, rc.nextID))
	if err != nil {
		return nil, err
	}
	var q struct {
		Items []struct {
			JID string `xml:"jid,attr"`
			Sub string `xml:"subscription,attr"`
		} `xml:"query>item"`
	}
	if err := xml.Unmarshal([]byte("<x>"+res.Inner+"</x>"), &q); err != nil {
		return nil, fmt.Errorf("parse roster %v: %w", res, err)
	}
	m := map[string]string{}
	for _, it := range q.Items {
		m[it.JID] = it.Sub
	}
	return m, nil
}

// isPresence matches a presence from the bare JID from, of type typ ("" is
// available).
func isPresence(from, typ string) func(stanza) bool {
	return func(s stanza) bool {
		return s.XMLName.Local == "presence" && bare(s.attr("from")) == from && s.attr("type") == typ
	}
}

// isChat matches a message (not an error) from the bare JID from with body.
func isChat(from, body string) func(stanza) bool {
	return func(s stanza) bool {
		return s.XMLName.Local == "message" && s.attr("type") != "error" && bare(s.attr("from")) == from && s.Body == body
	}
}

// expect waits for a stanza on rc or fails the test, saying what the user
// did not see.
func expect(t *testing.T, rc *rawClient, what string, match func(stanza) bool) stanza {
	t.Helper()
	st, err := rc.next(match)
	if err != nil {
		t.Fatalf("%s never saw %s: %v (other stanzas: %v)", rc.jid, what, err, rc.queue)
	}
	return st
}

// befriend makes the users of a and b (bare JIDs aj, bj) subscribe to each
// other and waits until both rosters say "both" and each got the other's
// available presence.
func (c *cluster) befriend(a, b *rawClient, aj, bj string) {
	t := c.t
	t.Helper()
	if err := a.write(`<presence type='subscribe' to='` + bj + `'/>`); err != nil {
		t.Fatal(err)
	}
	expect(t, b, "the subscription request of "+aj, isPresence(aj, "subscribe"))
	if err := b.write(`<presence type='subscribed' to='` + aj + `'/><presence type='subscribe' to='` + aj + `'/>`); err != nil {
		t.Fatal(err)
	}
	expect(t, a, "the subscription request of "+bj, isPresence(bj, "subscribe"))
	if err := a.write(`<presence type='subscribed' to='` + bj + `'/>`); err != nil {
		t.Fatal(err)
	}
	took := c.eventually(15*time.Second, fmt.Sprintf(`subscription "both" in the rosters of %s and %s`, aj, bj), func() error {
		for _, p := range []struct {
			rc      *rawClient
			contact string
		}{{a, bj}, {b, aj}} {
			items, err := rosterItems(p.rc)
			if err != nil {
				return err
			}
			if got := items[p.contact]; got != "both" {
				return fmt.Errorf("%s's roster: %s has subscription %q (roster %v)", p.rc.jid, p.contact, got, items)
			}
		}
		return nil
	})
	t.Logf("%s and %s: mutual subscription complete across nodes in %v", aj, bj, took.Round(time.Millisecond))
	expect(t, a, "the available presence of "+bj, isPresence(bj, ""))
	expect(t, b, "the available presence of "+aj, isPresence(aj, ""))
}

// chat sends body from one client to bare JID to and waits until the
// recipient's client gets it.
func chat(t *testing.T, from *rawClient, to *rawClient, toJID, body string) {
	t.Helper()
	if err := from.message(toJID, body); err != nil {
		t.Fatal(err)
	}
	expect(t, to, fmt.Sprintf("the message %q from %s", body, from.jid), isChat(bare(from.jid), body))
}

// TestClusterThreeNodes: three nodes act as one domain. Accounts made on any
// node work on all, and users on different nodes subscribe, see each
// other's presence and chat.
func TestClusterThreeNodes(t *testing.T) {
	c := newCluster(t)
	c.startAll()
	alice := c.nodes[0].addUser("alice", clusterPW)
	bob := c.nodes[1].addUser("bob", clusterPW)
	carol := c.nodes[2].addUser("carol", clusterPW)
	t.Logf("accounts made on three different nodes listed by every node after %v",
		c.waitUsers(alice, bob, carol).Round(time.Millisecond))

	a, b, cl := c.login(0, "alice"), c.login(1, "bob"), c.login(2, "carol")
	c.befriend(a, b, alice, bob)
	chat(t, a, b, bob, "hello bob, from node a")
	chat(t, b, a, alice, "hello alice, from node b")
	chat(t, a, cl, carol, "hello carol, from node a")

	// An account made on node c logs in on node a within a few seconds.
	t0 := time.Now()
	c.nodes[2].addUser("dave", clusterPW)
	d, at, err := c.loginWithin(0, "dave", 10*time.Second)
	if err != nil {
		t.Fatalf("dave, made with `casp3r user add` on node c, still cannot log in on node a after 10 s: %v", err)
	}
	t.Logf("account made on node c: login on node a works %v after `casp3r user add` started", at.Sub(t0).Round(time.Millisecond))
	d.close()

	took := c.waitStatus(15*time.Second, "3 nodes up with 1 user each in `cluster status --json`",
		allUp(map[string]int{"a": 1, "b": 1, "c": 1}, false))
	t.Logf("cluster status showed the right user counts on every node after %v", took.Round(time.Millisecond))

	b.close()
	t0 = time.Now()
	expect(t, a, "the unavailable presence of "+bob+" after bob logged out on node b", isPresence(bob, "unavailable"))
	t.Logf("bob logged out on node b: alice on node a saw it %v later", time.Since(t0).Round(time.Millisecond))
}
