package clusternode_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"casp3r/internal/certs"
	"casp3r/internal/cluster"
	"casp3r/internal/clusternode"
	"casp3r/internal/config"
	"casp3r/internal/jid"
	"casp3r/internal/sasl"
	"casp3r/internal/server"
	"casp3r/internal/storage"
	"casp3r/internal/xmpptest"
)

const domain = "cluster.test"

// node is one in-process node of a test cluster.
type node struct {
	name string
	cfg  *config.Config
	srv  *server.Server
	down bool

	mu     sync.Mutex
	engine server.Cluster // the running cluster engine, for tests that look inside
}

// nats returns the node's NATS side.
func (n *node) nats() *cluster.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return clusternode.Engine(n.engine)
}

// testSecret is keys/server.secret of every test node.
func testSecret() []byte {
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i * 7)
	}
	return secret
}

// newNode prepares the data folder of a node of a test cluster: edit fills
// in cfg.Cluster (and anything else) after the defaults for tests.
func newNode(t *testing.T, edit func(cfg *config.Config)) *node {
	t.Helper()
	cfg := config.Default()
	cfg.Dir, cfg.Domain, cfg.Listen = t.TempDir(), domain, "127.0.0.1"
	cfg.S2S.Port, cfg.S2S.DirectTLSPort, cfg.HTTPS.Port = 0, 0, 0
	cfg.C2S.DirectTLSPort = 1 // any port: the listen address is 127.0.0.1:0
	edit(&cfg)
	if err := certs.GenerateSelfSigned(domain, cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.Path("keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Path(server.SecretFile), testSecret(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &node{name: cfg.Cluster.Name, cfg: &cfg}
}

func (n *node) addr() string { return n.srv.Addr(server.ListenerC2S).String() }

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCluster starts count nodes in one process, each with its own data
// folder, on routes 127.0.0.1:port; they share the node secret.
func startCluster(t *testing.T, count int) []*node {
	t.Helper()
	nodes, _ := startClusterLinks(t, count, false, 0, nil)
	return nodes
}

// startClusterWith is startCluster with edit applied to node i's config
// before it starts.
func startClusterWith(t *testing.T, count int, edit func(i int, cfg *config.Config)) []*node {
	t.Helper()
	nodes, _ := startClusterLinks(t, count, false, 0, edit)
	return nodes
}

// deadEnd is a loopback address where nothing listens.
const deadEnd = "127.0.0.1:9"

// startClusterLinks is startCluster with, when proxied, every route from
// node i to node j going through links[i][j], which adds delay one way, and
// edit (if not nil) applied to each node's config.
func startClusterLinks(t *testing.T, count int, proxied bool, delay time.Duration, edit func(i int, cfg *config.Config)) ([]*node, [][]*linkProxy) {
	t.Helper()
	routes := make([]string, count)
	for i := range routes {
		routes[i] = freePort(t, "127.0.0.1")
	}
	var links [][]*linkProxy
	if proxied {
		links = make([][]*linkProxy, count)
		for i := range links {
			links[i] = make([]*linkProxy, count)
			for j := range links[i] {
				if i != j {
					links[i][j] = newLinkProxy(t, routes[j], delay)
				}
			}
		}
	}
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = newNode(t, func(cfg *config.Config) {
			cfg.Cluster.Name = fmt.Sprintf("n%d", i+1)
			cfg.Cluster.Listen = routes[i]
			if proxied {
				// Gossip must not lead nodes around the links: the
				// address nodes hear of for each other leads nowhere.
				cfg.Cluster.Advertise = deadEnd
			}
			for j, r := range routes {
				switch {
				case j == i:
				case proxied:
					cfg.Cluster.Peers = append(cfg.Cluster.Peers, links[i][j].addr())
				default:
					cfg.Cluster.Peers = append(cfg.Cluster.Peers, r)
				}
			}
			if edit != nil {
				edit(i, cfg)
			}
		})
	}
	var wg sync.WaitGroup
	errs := make([]error, count)
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.start() })
	}
	wg.Wait()
	// Stop the nodes at once: one by one, the last ones would wait without
	// a quorum.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() { n.stop(t) })
		}
		wg.Wait()
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start node %d: %v", i+1, err)
		}
	}
	return nodes, links
}

func (n *node) start() error {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", n.name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keep := func(ctx context.Context, p server.ClusterParts) (server.Cluster, error) {
		c, err := clusternode.Start(ctx, p)
		if err == nil {
			n.mu.Lock()
			n.engine = c
			n.mu.Unlock()
		}
		return c, err
	}
	srv, err := server.New(ctx, n.cfg, log, "test",
		server.WithCluster(keep),
		server.WithListenAddr(func(int) string { return "127.0.0.1:0" }))
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	n.srv, n.down = srv, false
	return nil
}

func (n *node) stop(t *testing.T) {
	if n.down || n.srv == nil {
		return
	}
	n.down = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown %s: %v", n.name, err)
	}
}

func addUser(t *testing.T, n *node, user, password string) {
	t.Helper()
	c, err := sasl.NewCredentials(password, 4096)
	if err != nil {
		t.Fatal(err)
	}
	err = n.srv.Store().CreateAccount(context.Background(), user,
		storage.Credentials{SHA1: storage.ScramKeys(c.SHA1), SHA256: storage.ScramKeys(c.SHA256)})
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func digest(t *testing.T, n *node) string {
	t.Helper()
	d, err := n.srv.Store().ViewsDigest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func login(t *testing.T, n *node, user, password, resource string) *xmpptest.Client {
	t.Helper()
	return loginAt(t, n.addr(), user, password, resource)
}

// loginAt logs in at addr, gets the roster and sends initial presence.
func loginAt(t *testing.T, addr, user, password, resource string) *xmpptest.Client {
	t.Helper()
	c := xmpptest.Login(t, addr, domain, user, password, resource)
	c.SendRaw("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
	c.Expect("roster", xmpptest.ByID("r0"))
	c.SendRaw("<presence/>")
	return c
}

// befriend makes a and b (online as aFull and bFull) subscribe to each
// other, checking each step and each other's presence, then exchange one
// chat message each way; where names the setting in failures.
func befriend(t *testing.T, a *xmpptest.Client, aFull string, b *xmpptest.Client, bFull, where string) {
	t.Helper()
	aJID, _, _ := strings.Cut(aFull, "/")
	bJID, _, _ := strings.Cut(bFull, "/")
	a.SendRaw("<presence to='" + bJID + "' type='subscribe'/>")
	b.Expect("subscription request "+where, xmpptest.IsPresence(aJID, "subscribe"))
	b.SendRaw("<presence to='" + aJID + "' type='subscribed'/>")
	a.Expect("subscribed "+where, xmpptest.IsPresence(bJID, "subscribed"))
	a.Expect("available presence "+where, xmpptest.IsPresence(bFull, ""))
	b.SendRaw("<presence to='" + aJID + "' type='subscribe'/>")
	a.Expect("subscription request back "+where, xmpptest.IsPresence(bJID, "subscribe"))
	a.SendRaw("<presence to='" + bJID + "' type='subscribed'/>")
	b.Expect("available presence back "+where, xmpptest.IsPresence(aFull, ""))

	a.SendRaw("<message to='" + bJID + "' type='chat'><body>hello " + where + "</body></message>")
	b.Expect("message "+where, xmpptest.IsMessage("hello "+where))
	b.SendRaw("<message to='" + aFull + "' type='chat'><body>hi back " + where + "</body></message>")
	a.Expect("reply "+where, xmpptest.IsMessage("hi back "+where))
}

// TestThreeNodes runs what users of one server do, with each user on a
// different node: an account made on one node logs in on another, contacts
// subscribe, see each other's presence and chat; a message to a user whose
// node is gone is kept and delivered when the user comes back on a
// surviving node; every node ends with the same data.
func TestThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three cluster nodes")
	}
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	addUser(t, n1, "alice", "a-pass")
	addUser(t, n3, "bob", "b-pass")
	waitFor(t, 10*time.Second, "accounts on every node", func() bool {
		for _, n := range nodes {
			for _, u := range []string{"alice", "bob"} {
				if ok, _ := n.srv.Store().AccountExists(context.Background(), u); !ok {
					return false
				}
			}
		}
		return true
	})

	alice := login(t, n1, "alice", "a-pass", "pc")
	bob := login(t, n2, "bob", "b-pass", "phone")
	aliceJID, bobJID := "alice@"+domain, "bob@"+domain
	waitFor(t, 10*time.Second, "bob's session known on node 1", func() bool {
		for _, r := range n1.srv.Router().Resources(jid.MustParse(bobJID)) {
			if r.Node == "n2" && r.Available {
				return true
			}
		}
		return false
	})

	befriend(t, alice, aliceJID+"/pc", bob, bobJID+"/phone", "across nodes")

	// Node 2 goes away; what alice sends meanwhile waits for bob.
	n2.stop(t)
	alice.Expect("bob offline", xmpptest.IsPresence(bobJID+"/phone", "unavailable"))
	alice.SendRaw("<message to='" + bobJID + "' type='chat'><body>while node 2 was down</body></message>")
	alice.SendRaw("<iq type='get' id='p1' to='" + domain + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	alice.Expect("ping", xmpptest.ByID("p1"))
	bob = login(t, n3, "bob", "b-pass", "phone")
	bob.Expect("offline message on another node", xmpptest.IsMessage("while node 2 was down"))
	alice.Expect("bob back", xmpptest.IsPresence(bobJID+"/phone", ""))

	// Node 2 comes back and catches up.
	if err := n2.start(); err != nil {
		t.Fatalf("restart node 2: %v", err)
	}
	waitFor(t, 30*time.Second, "equal data on every node", func() bool {
		d := digest(t, n1)
		return d == digest(t, n2) && d == digest(t, n3)
	})
}
