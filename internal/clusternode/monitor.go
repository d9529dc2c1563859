package clusternode

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"casp3r/internal/router"
	"casp3r/internal/server"
)

// heartbeat is what a node publishes every Heartbeat.
type heartbeat struct {
	Name    string `json:"name"`
	Users   int    `json:"users"`
	Applied uint64 `json:"applied"`
	// Load sharing (loadshare.go): where clients reach the node, and its
	// [cluster] max_clients (0 = no limit).
	Client     string `json:"client,omitempty"`     // STARTTLS host:port
	ClientTLS  string `json:"client_tls,omitempty"` // direct TLS host:port
	MaxClients int    `json:"max_clients,omitempty"`
	// Leaf is set by a leaf node: it holds no vote and never speaks for
	// the cluster about a dead node.
	Leaf bool `json:"leaf,omitempty"`
}

type peer struct {
	hb       heartbeat
	seen     time.Time // local clock
	seenWall time.Time
	dead     bool
	// sent counts the clients this node sent to the peer since its last
	// heartbeat, which does not count them yet.
	sent int
}

// monitor publishes this node's heartbeats, follows the others', and acts
// when one of them dies.
type monitor struct {
	n     *Node
	mu    sync.Mutex
	peers map[string]*peer
	// client is where clients reach this node (see clientAddress).
	client clientAddress
}

func (m *monitor) init(n *Node) {
	m.n = n
	m.peers = make(map[string]*peer)
	m.client = newClientAddress(n.p.Config, n.log)
}

func (m *monitor) start() error {
	stop, err := m.n.c.Serve(subjHeartbeat, func(_ func(string) string, data []byte) []byte {
		var hb heartbeat
		if json.Unmarshal(data, &hb) == nil && hb.Name != "" && hb.Name != m.n.self {
			m.seen(hb)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("join cluster: %w", err)
	}
	m.n.stops = append(m.n.stops, stop)
	m.n.wg.Add(1)
	go m.loop()
	return nil
}

func (m *monitor) seen(hb heartbeat) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[hb.Name]
	if p == nil {
		p = &peer{}
		m.peers[hb.Name] = p
	}
	if p.dead {
		m.n.log.Info("cluster node is back", "node", hb.Name)
	}
	p.hb, p.seen, p.seenWall, p.dead, p.sent = hb, time.Now(), time.Now().UTC(), false, 0
}

func (m *monitor) loop() {
	defer m.n.wg.Done()
	t := time.NewTicker(Heartbeat)
	defer t.Stop()
	for {
		m.beat()
		m.check()
		m.writeStatus()
		select {
		case <-m.n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *monitor) self() heartbeat {
	hb := heartbeat{Name: m.n.self, Users: m.n.p.Router.SessionCount(), Applied: m.n.applied.Load(),
		MaxClients: m.n.p.Config.MaxClients, Leaf: m.n.c.Leaf()}
	hb.Client, hb.ClientTLS = m.client.addrs(m.n.p.ClientPorts)
	return hb
}

func (m *monitor) beat() {
	b, _ := json.Marshal(m.self())
	if err := m.n.c.PublishMsg(subjHeartbeat, nil, b); err != nil && m.n.ctx.Err() == nil {
		m.n.log.Debug("heartbeat", "err", err)
	}
}

// check marks the nodes silent for DeadAfter as dead and handles them.
func (m *monitor) check() {
	if m.n.c.Leaf() && m.n.c.Hub() == "" {
		// This leaf has lost its link: it is the one cut off, not the
		// others. Their heartbeats come back with the link.
		return
	}
	now := time.Now()
	var died []string
	m.mu.Lock()
	for name, p := range m.peers {
		if !p.dead && now.Sub(p.seen) > DeadAfter {
			p.dead = true
			died = append(died, name)
		}
	}
	m.mu.Unlock()
	for _, name := range died {
		m.nodeDied(name)
	}
}

// nodeDied takes a dead node's resources out of the router. The first live
// node by name also broadcasts their unavailable presence and removes their
// entries from the bucket, so that it happens once.
func (m *monitor) nodeDied(name string) {
	gone := m.n.dir.dropNode(name)
	first := m.first()
	m.n.log.Warn("cluster node is silent, taking it for dead", "node", name, "sessions", len(gone), "broadcaster", first)
	if first != m.n.self {
		return
	}
	for _, g := range gone {
		res := g.res
		if res.Available {
			res.Session = nopSession{res.JID}
			m.n.p.Presence.Ended(m.n.ctx, res, g.directed)
		}
		m.n.dir.removeDead(sessionKey(name, res.JID))
	}
}

// first returns the first live node by name, this node included.
// Leaf nodes are never first; "" when only leaves are left.
func (m *monitor) first() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := ""
	if !m.n.c.Leaf() {
		first = m.n.self
	}
	for name, p := range m.peers {
		if !p.dead && !p.hb.Leaf && (first == "" || name < first) {
			first = name
		}
	}
	return first
}

// writeStatus writes this node's view of the cluster to the status file.
func (m *monitor) writeStatus() {
	ctx, cancel := context.WithTimeout(m.n.ctx, Heartbeat)
	defer cancel()
	st := server.ClusterStatus{Self: m.n.self, Updated: time.Now().UTC()}
	if li, err := m.n.c.LogInfo(ctx); err == nil {
		st.LogLeader, st.LastPos = li.Leader, li.LastPos
	}
	self := m.self()
	st.Nodes = append(st.Nodes, server.ClusterNodeStatus{Name: self.Name, Up: true, Users: self.Users, Applied: self.Applied, LastSeen: st.Updated,
		MaxClients: self.MaxClients, ClientAddress: self.Client, Leaf: self.Leaf})
	m.mu.Lock()
	for _, p := range m.peers {
		st.Nodes = append(st.Nodes, server.ClusterNodeStatus{Name: p.hb.Name, Up: !p.dead, Users: p.hb.Users, Applied: p.hb.Applied, LastSeen: p.seenWall,
			MaxClients: p.hb.MaxClients, ClientAddress: p.hb.Client, Leaf: p.hb.Leaf})
	}
	m.mu.Unlock()
	for i := range st.Nodes {
		if st.LastPos > st.Nodes[i].Applied {
			st.Nodes[i].Lag = st.LastPos - st.Nodes[i].Applied
		}
		if !st.Nodes[i].Up {
			st.Nodes[i].Users = 0
		}
	}
	slices.SortFunc(st.Nodes, func(a, b server.ClusterNodeStatus) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return
	}
	path := filepath.Join(m.n.p.Dir, server.ClusterStatusFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		m.n.log.Debug("write cluster status", "err", err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		m.n.log.Debug("write cluster status", "err", err)
	}
}

var _ router.Observer = (*directory)(nil)
