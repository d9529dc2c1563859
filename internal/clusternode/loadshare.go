package clusternode

// Load sharing. Clients find every node of the cluster through the
// domain's DNS SRV records; a node that already serves [cluster]
// max_clients sessions sends a new client to another node with the stream
// error see-other-host (RFC 6120 §4.9.3.19), naming the least-loaded live
// node that still has room, or refuses it with resource-constraint when
// none has.
//
// What a node needs to know of the others travels in the heartbeats: the
// addresses clients reach each node at (STARTTLS and direct TLS), its
// max_clients and its sessions. Loads are a second old at most; the
// clients a node sent to a peer since that peer's last heartbeat are
// counted on top, so that a burst of new clients is spread instead of all
// going to the node that was least loaded a moment ago.

import (
	"log/slog"
	"net"
	"strconv"
	"strings"

	"casp3r/internal/c2s"
	"casp3r/internal/config"
)

var _ c2s.Redirector = (*Node)(nil)

// Redirect tells the c2s server where a new client goes when this node is
// full (a c2s.Redirector; the server installs it when max_clients is set).
func (n *Node) Redirect(directTLS bool) (addr string, redirect bool) {
	max := n.p.Config.MaxClients
	if max <= 0 || n.p.Router.SessionCount() < max {
		return "", false
	}
	return n.mon.leastLoaded(directTLS), true
}

// leastLoaded picks the live node with the fewest sessions among those
// with room that serve the transport (ties go to the first by name), and
// counts the client it is sent; "" when there is none.
func (m *monitor) leastLoaded(directTLS bool) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best *peer
	bestLoad := 0
	for _, p := range m.peers {
		if p.dead || p.hb.clientAddr(directTLS) == "" {
			continue
		}
		load := p.hb.Users + p.sent
		if p.hb.MaxClients > 0 && load >= p.hb.MaxClients {
			continue
		}
		if best == nil || load < bestLoad || load == bestLoad && p.hb.Name < best.hb.Name {
			best, bestLoad = p, load
		}
	}
	if best == nil {
		return ""
	}
	best.sent++
	return best.hb.clientAddr(directTLS)
}

// clientAddr is where the node takes clients of a transport ("" = nowhere).
func (hb *heartbeat) clientAddr(directTLS bool) string {
	if directTLS {
		return hb.ClientTLS
	}
	return hb.Client
}

// clientAddress is where clients reach this node: [cluster] client_address,
// else (not on a leaf node) the host of the route address (advertise, else
// listen) with the node's own client ports.
type clientAddress struct {
	host string // "" when no address is known: no client is sent here
	port int    // STARTTLS port of client_address; 0 = the listener's
}

func newClientAddress(cfg config.Cluster, log *slog.Logger) clientAddress {
	if a := cfg.ClientAddress; a != "" {
		if host, port, err := net.SplitHostPort(a); err == nil {
			p, _ := strconv.Atoi(port)
			return clientAddress{host: host, port: p}
		}
		return clientAddress{host: strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")}
	}
	if cfg.Leaf {
		// A leaf's peers are the full nodes; it may be behind NAT, where
		// no client reaches it unless client_address says how.
		log.Info("no [cluster] client_address: the other nodes send no clients to this leaf node")
		return clientAddress{}
	}
	route := cfg.Advertise
	if route == "" {
		route = cfg.Listen
	}
	host, _, _ := net.SplitHostPort(route)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		log.Warn("the other nodes cannot send clients to this node when they are full: "+
			"set [cluster] client_address (the route address names no host)", "route", route)
		return clientAddress{}
	}
	return clientAddress{host: host}
}

// addrs returns the STARTTLS and direct TLS addresses for the heartbeat,
// with the ports the listeners are bound to; "" for a listener that is not
// open (yet).
func (c clientAddress) addrs(ports func() (int, int)) (starttls, directTLS string) {
	if c.host == "" || ports == nil {
		return "", ""
	}
	p, tp := ports()
	if p != 0 {
		if c.port != 0 {
			p = c.port
		}
		starttls = net.JoinHostPort(c.host, strconv.Itoa(p))
	}
	if tp != 0 {
		directTLS = net.JoinHostPort(c.host, strconv.Itoa(tp))
	}
	return starttls, directTLS
}
