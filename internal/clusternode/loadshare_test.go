package clusternode_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"casp3r/internal/config"
	"casp3r/internal/jid"
	"casp3r/internal/server"
	"casp3r/internal/xmlstream"
	"casp3r/internal/xmpptest"
)

func (n *node) tlsAddr() string { return n.srv.Addr(server.ListenerDirectTLS).String() }

// status reads the node's status file (what `casp3r cluster status` shows).
func (n *node) status(t *testing.T) server.ClusterStatus {
	t.Helper()
	st, err := server.ReadClusterStatus(filepath.Join(n.cfg.Dir, "cluster"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return st
}

// sees reports whether n's status shows the node called name up, taking
// clients at addr, with users sessions.
func (n *node) sees(t *testing.T, name, addr string, users int) bool {
	for _, ns := range n.status(t).Nodes {
		if ns.Name == name {
			return ns.Up && ns.ClientAddress == addr && ns.Users == users
		}
	}
	return false
}

// firstAnswer opens a stream to addr (direct TLS when directTLS; else it
// negotiates STARTTLS and opens the next stream, as a node redirects only
// under TLS) and returns the stream error condition the server ends it
// with, and the content of a see-other-host; cond is "features" when the
// server serves the client instead.
func firstAnswer(t *testing.T, addr string, directTLS bool) (cond, other string) {
	t.Helper()
	var conn net.Conn
	var err error
	if directTLS {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: xmpptest.Timeout}, "tcp", addr,
			&tls.Config{InsecureSkipVerify: true, ServerName: domain})
	} else {
		conn, err = net.DialTimeout("tcp", addr, xmpptest.Timeout)
	}
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(xmpptest.Timeout))
	open := func() *xmlstream.Element {
		t.Helper()
		_, err := conn.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
			"xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "' version='1.0'>"))
		if err != nil {
			t.Fatal(err)
		}
		r := xmlstream.NewReader(conn, xmlstream.Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatalf("read the stream header of %s: %v", addr, err)
		}
		el, err := r.Next()
		if err != nil {
			t.Fatalf("read the first element from %s: %v", addr, err)
		}
		if !directTLS && el.Is(xmlstream.NSStream, "features") {
			if _, err := conn.Write([]byte("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")); err != nil {
				t.Fatal(err)
			}
			if p, err := r.Next(); err != nil || p.Name.Local != "proceed" {
				t.Fatalf("%s answered <starttls/> with %v, %v", addr, p, err)
			}
		}
		return el
	}
	el := open()
	if !directTLS {
		if !el.Is(xmlstream.NSStream, "features") {
			t.Fatalf("%s answered a new stream before TLS with %s, want the features (no redirect in the clear)", addr, el)
		}
		conn = tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: domain})
		directTLS = true // the next stream is under TLS
		el = open()
	}
	switch {
	case el.Is(xmlstream.NSStream, "features"):
		return "features", ""
	case el.Is(xmlstream.NSStream, "error") && el.First() != nil:
		c := el.First()
		return c.Name.Local, c.Text()
	}
	t.Fatalf("%s answered a new stream with %s", addr, el)
	return "", ""
}

// TestLoadSharing: a node that has max_clients sessions sends a new client
// to the least-loaded node with room (see-other-host, STARTTLS or direct
// TLS address by the client's transport); the client logs in there and
// chats with a user on the full node; with every node full, a new client
// gets resource-constraint; once a session ends, the node takes clients
// again.
func TestLoadSharing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three cluster nodes")
	}
	maxClients := []int{1, 2, 1}
	nodes := startClusterWith(t, 3, func(i int, cfg *config.Config) { cfg.Cluster.MaxClients = maxClients[i] })
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	users := []string{"alice", "bob", "carol", "dave", "eve"}
	for _, u := range users {
		addUser(t, n1, u, u+"-pass")
	}
	waitFor(t, 10*time.Second, "accounts on every node", func() bool {
		for _, n := range nodes {
			for _, u := range users {
				if ok, _ := n.srv.Store().AccountExists(context.Background(), u); !ok {
					return false
				}
			}
		}
		return true
	})

	alice := login(t, n1, "alice", "alice-pass", "pc") // n1 is full now (1 of 1)
	carol := login(t, n2, "carol", "carol-pass", "pc") // n2: 1 of 2
	waitFor(t, 10*time.Second, "node 1 seeing node 2 with 1 user and node 3 with none, with their client addresses", func() bool {
		return n1.sees(t, "n2", n2.addr(), 1) && n1.sees(t, "n3", n3.addr(), 0)
	})

	// Bob goes to node 1 and is sent to node 3, the least loaded.
	t0 := time.Now()
	cond, other := firstAnswer(t, n1.addr(), false)
	if cond != "see-other-host" || other != n3.addr() {
		t.Fatalf("a new client on the full node 1 got %s %q, want see-other-host %q (node 3, 0 of 1 users; node 2 has 1 of 2)",
			cond, other, n3.addr())
	}
	bob := loginAt(t, other, "bob", "bob-pass", "phone")
	t.Logf("bob sent from node 1 to node 3 and logged in there %v after connecting", time.Since(t0).Round(time.Millisecond))
	if got := n3.srv.Router().SessionCount(); got != 1 {
		t.Errorf("node 3 has %d sessions after bob's login, want 1", got)
	}

	// Bob on node 3 and alice on the full node 1 chat.
	waitFor(t, 10*time.Second, "alice's session known on node 3", func() bool {
		return len(n3.srv.Router().Resources(jid.MustParse("alice@"+domain))) > 0
	})
	bob.SendRaw("<message to='alice@" + domain + "' type='chat'><body>hi from the node I was sent to</body></message>")
	alice.Expect("bob's message", xmpptest.IsMessage("hi from the node I was sent to"))

	// Direct TLS goes to a direct TLS port: node 3 is full now, node 2 is not.
	waitFor(t, 10*time.Second, "node 1 seeing bob on node 3", func() bool { return n1.sees(t, "n3", n3.addr(), 1) })
	if cond, other := firstAnswer(t, n1.tlsAddr(), true); cond != "see-other-host" || other != n2.tlsAddr() {
		t.Errorf("a new direct TLS client on node 1 got %s %q, want see-other-host %q (node 2's direct TLS port)",
			cond, other, n2.tlsAddr())
	}

	// Dave is sent to node 2. The direct TLS client above never arrived
	// there: node 1 counts it on node 2 until node 2's next heartbeat.
	waitFor(t, 5*time.Second, "node 1 sending a new client to node 2 again", func() bool {
		cond, other = firstAnswer(t, n1.addr(), false)
		return cond == "see-other-host"
	})
	if other != n2.addr() {
		t.Fatalf("dave sent to %q, want node 2 (%s)", other, n2.addr())
	}
	dave := loginAt(t, other, "dave", "dave-pass", "pc")

	// Every node is full.
	waitFor(t, 10*time.Second, "node 1 seeing dave on node 2", func() bool { return n1.sees(t, "n2", n2.addr(), 2) })
	for _, tc := range []struct {
		n         *node
		addr      string
		directTLS bool
	}{{n1, n1.addr(), false}, {n1, n1.tlsAddr(), true}, {n3, n3.addr(), false}} {
		if cond, other := firstAnswer(t, tc.addr, tc.directTLS); cond != "resource-constraint" {
			t.Errorf("with every node full, a new client on %s (direct TLS %v) got %s %q, want resource-constraint",
				tc.n.name, tc.directTLS, cond, other)
		}
	}

	// Alice leaves: node 1 takes the next client itself.
	alice.Close()
	waitFor(t, 10*time.Second, "alice's session gone from node 1", func() bool { return n1.srv.Router().SessionCount() == 0 })
	if cond, other := firstAnswer(t, n1.addr(), false); cond != "features" {
		t.Fatalf("node 1 with 0 of 1 sessions answered a new client with %s %q, want the stream features", cond, other)
	}
	eve := loginAt(t, n1.addr(), "eve", "eve-pass", "pc")

	// Everybody leaves before the nodes stop: a node that stops after the
	// others could not remove its session entries without a quorum.
	for _, c := range []*xmpptest.Client{bob, carol, dave, eve} {
		c.Close()
	}
	waitFor(t, 10*time.Second, "every session gone from every node", func() bool {
		for _, n := range nodes {
			if n.srv.Router().SessionCount() != 0 {
				return false
			}
			for _, u := range users {
				if len(n.srv.Router().Resources(jid.MustParse(u+"@"+domain))) != 0 {
					return false
				}
			}
		}
		return true
	})
}
