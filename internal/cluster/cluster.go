// Package cluster makes several CASP3R nodes act as one XMPP domain by
// embedding a NATS server (github.com/nats-io/nats-server/v2) in the process.
//
// It implements no consensus, membership or replication of its own: nodes are
// joined by NATS cluster routes (authenticated with a secret shared by all
// nodes), JetStream (Raft inside nats-server) replicates the account logs and
// the session bucket, and core NATS carries stanzas between nodes. The node
// talks to its own server through an in-process connection; no NATS client
// from outside the process is admitted (see [Start] for the loopback
// listener nats-server needs all the same).
//
// # Layout
//
//   - user.<token>: core NATS subject per bare JID, for stanzas between nodes
//     (at most once; see [Node.Publish]).
//   - LOGS: one JetStream stream, file storage, subjects log.<token>, one
//     subject per account, replicated to [Config.Replicas] nodes.
//   - KV bucket "sessions": presence and stream-management state, replicated,
//     entries expire after [Config.SessionTTL] unless their owner refreshes them.
//
// A token is a fixed-length hash of the (already prepared) name, see [Token].
// Streams and buckets are created once, when the cluster is formed
// ([Node.EnsureStreams]), never per user.
//
// # Leaf nodes
//
// A leaf node ([Config.Leaf]) serves clients but holds no vote and no
// replica: a weak box, or one behind NAT that can dial out but cannot be
// dialled. Its embedded server runs no JetStream and no routes; it keeps one
// NATS leaf node connection to a full node's leaf listener
// ([Config.LeafListen]), failing over to the next full node when that one
// goes, in the same NATS account as the full nodes. Core subjects cross the
// connection like routes; JetStream requests go to the full nodes'
// JetStream domain ([JetStreamDomain]), which the full node the leaf is
// connected to maps back onto its own JetStream API.
//
// See docs/design/cluster.md for the reasons and the measured costs.
package cluster

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names shared by every node of a cluster.
const (
	// ClusterName is the NATS cluster name; all nodes must use the same one.
	ClusterName = "casp3r"
	// LogStream is the JetStream stream holding every account's log.
	LogStream = "LOGS"
	// SessionBucket is the JetStream KV bucket holding session state.
	SessionBucket = "sessions"

	// JetStreamDomain is the JetStream domain of the full nodes. A leaf
	// node, which has no JetStream of its own, sends its JetStream requests
	// to $JS.<domain>.API.>, and the full node it is connected to maps them
	// onto $JS.API.> (nats-server's hub and leaf domains).
	JetStreamDomain = "casp3r"

	routeUser = "casp3r"
	leafUser  = "casp3r-leaf"
)

// Defaults applied by [Start] to zero fields of [Config].
const (
	DefaultReplicas   = 3
	DefaultSessionTTL = 5 * time.Minute
)

// Config configures one node. The [cluster] section of casp3r.toml maps onto
// it.
type Config struct {
	// Name identifies the node in the cluster; unique and stable across
	// restarts (JetStream places replicas by it).
	Name string
	// Dir is the JetStream storage directory (DATA/cluster), made by Start
	// if missing. A leaf node stores nothing there.
	Dir string
	// RouteListen is the host:port on which this node accepts cluster routes
	// from the other nodes. Required when Peers is not empty.
	RouteListen string
	// Advertise is the host:port other nodes are told to reach this node
	// at when they learn of it from a third node (a node behind NAT, or
	// listening on all addresses); empty: RouteListen.
	Advertise string
	// Peers are the other nodes' route addresses (host:port). Empty means a
	// node of its own with a local, unreplicated JetStream (for measurements
	// and tests; a single-node server does not use this package at all).
	// On a leaf node: the full nodes' leaf listeners (LeafListen), at least
	// one; the leaf connects to one of them and fails over to the others.
	Peers []string
	// Secret authenticates routes and leaf node connections (each with a
	// password of its own derived from it): a node must know it to join.
	// Required when Peers is not empty. Both are TLS 1.3 with
	// certificates from a cluster CA derived from it (see linkTLS).
	Secret string
	// Leaf makes this node a leaf node: no routes, no JetStream (no vote,
	// no replica), one leaf node connection to a full node listed in Peers.
	// RouteListen and LeafListen must be empty.
	Leaf bool
	// LeafListen is the host:port on which this full node accepts leaf
	// nodes; empty: none.
	LeafListen string
	// Replicas is the replica count of the log stream and the session bucket:
	// DefaultReplicas when zero, capped at the cluster size.
	Replicas int
	// SessionTTL is how long a session entry lives unless it is written again:
	// DefaultSessionTTL when zero.
	SessionTTL time.Duration
	// Logger receives nats-server's log lines; nil discards them.
	Logger *slog.Logger
}

// clustered reports whether the node joins other nodes.
func (c *Config) clustered() bool { return len(c.Peers) > 0 }

// normalize checks cfg and fills in the defaults.
func (c *Config) normalize() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("cluster.name: empty"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("cluster.dir: empty"))
	}
	switch {
	case c.Leaf:
		if len(c.Peers) == 0 {
			errs = append(errs, errors.New("cluster.peers: empty (a leaf node needs a full node's leaf_listen address)"))
		}
		if c.RouteListen != "" {
			errs = append(errs, fmt.Errorf("cluster.listen %q: a leaf node has no routes", c.RouteListen))
		}
		if c.LeafListen != "" {
			errs = append(errs, fmt.Errorf("cluster.leaf_listen %q: only full nodes accept leaf nodes", c.LeafListen))
		}
	case c.clustered():
		if _, _, err := splitHostPort(c.RouteListen); err != nil {
			errs = append(errs, fmt.Errorf("cluster.listen %q: %w", c.RouteListen, err))
		}
	}
	if c.LeafListen != "" {
		if _, _, err := splitHostPort(c.LeafListen); err != nil {
			errs = append(errs, fmt.Errorf("cluster.leaf_listen %q: %w", c.LeafListen, err))
		}
	}
	if (c.clustered() || c.LeafListen != "") && c.Secret == "" {
		errs = append(errs, errors.New("cluster.secret: empty (routes and leaf nodes must be authenticated)"))
	}
	for _, p := range c.Peers {
		if _, _, err := splitHostPort(p); err != nil {
			errs = append(errs, fmt.Errorf("cluster.peers %q: %w", p, err))
		}
	}
	size := len(c.Peers) + 1
	switch {
	case c.Leaf:
		c.Replicas = 0 // a leaf creates no stream
	case c.Replicas == 0:
		c.Replicas = min(DefaultReplicas, size)
	case c.Replicas < 0 || c.Replicas > size || c.Replicas > 5:
		errs = append(errs, fmt.Errorf("cluster.replicas %d: must be between 1 and min(5, %d nodes)", c.Replicas, size))
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	} else if c.SessionTTL < time.Second {
		errs = append(errs, fmt.Errorf("cluster.session_ttl %s: below 1s", c.SessionTTL))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}

func splitHostPort(hp string) (string, int, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	return host, p, nil
}

// Node is one running cluster node: the embedded NATS server and the
// in-process client connection to it.
type Node struct {
	cfg  Config
	log  *slog.Logger
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	natl *natsLogger

	kv atomic.Pointer[jetstream.KeyValue] // set by EnsureStreams or on first use

	shutdownOnce sync.Once
	shutdownDone chan struct{}
}

// Start starts the embedded NATS server with cluster routes (when peers are
// configured) and JetStream with every write synced to disk, and connects to
// it in process. It returns once the server accepts connections and, when
// clustered, JetStream has a meta leader, i.e. once a quorum of the cluster
// is up: nodes of a new cluster must be started concurrently. ctx bounds the
// wait.
//
// A node without peers opens no port at all. A clustered node listens for
// routes on RouteListen and, because nats-server v2.15 starts routes only
// after its client accept loop (with DontListen they never start), also on a
// random 127.0.0.1 port where every client that is not in process is refused.
//
// A leaf node opens no port either: it returns once its leaf node
// connection to a full node is up and the full nodes' JetStream answers
// through it (the full nodes need not have made the streams yet).
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.normalize(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	opts, err := serverOptions(&cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	// JetStream makes it on full nodes; a leaf keeps only what the caller
	// puts there (the status file).
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster folder: %w", err)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	nl := &natsLogger{log: cfg.Logger.With("component", "nats")}
	debug := cfg.Logger.Enabled(ctx, slog.LevelDebug)
	srv.SetLoggerV2(nl, debug, false, false)

	n := &Node{cfg: cfg, log: cfg.Logger, srv: srv, natl: nl, shutdownDone: make(chan struct{})}
	go srv.Start()
	if err := n.waitReady(ctx); err != nil {
		n.stopServer()
		return nil, err
	}
	nc, err := nats.Connect("",
		nats.InProcessServer(srv),
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
	)
	if err != nil {
		n.stopServer()
		return nil, fmt.Errorf("connect in process: %w", err)
	}
	n.nc = nc
	var js jetstream.JetStream
	if cfg.Leaf {
		js, err = jetstream.NewWithDomain(nc, JetStreamDomain)
	} else {
		js, err = jetstream.New(nc)
	}
	if err != nil {
		nc.Close()
		n.stopServer()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	n.js = js
	if cfg.Leaf {
		// The full nodes' JetStream answers once the full node at the other
		// end has sent its interest (the domain's API) over the connection.
		if err := n.retry(ctx, func(ctx context.Context) error {
			_, err := js.AccountInfo(ctx)
			return err
		}); err != nil {
			nc.Close()
			n.stopServer()
			return nil, fmt.Errorf("start nats: the full nodes' jetstream does not answer through the leaf connection: %w", err)
		}
	}
	return n, nil
}

// apiPrefix returns the prefix of this node's JetStream API subjects.
func (n *Node) apiPrefix() string {
	if n.cfg.Leaf {
		return "$JS." + JetStreamDomain + ".API."
	}
	return "$JS.API."
}

// serverOptions maps cfg onto nats-server options.
func serverOptions(cfg *Config) (*server.Options, error) {
	opts := &server.Options{
		ServerName: cfg.Name,
		// The client port would ideally be off (DontListen), but
		// nats-server v2.15 starts routes only after the client accept
		// loop is up, so with DontListen a cluster never forms. The port
		// is bound to a random loopback port instead and refuses every
		// connection that is not in process.
		Host:                       "127.0.0.1",
		Port:                       server.RANDOM_PORT,
		CustomClientAuthentication: inProcessOnly{},
		NoSigs:                     true,
	}
	var tc *tls.Config
	if cfg.Leaf || cfg.clustered() || cfg.LeafListen != "" {
		var err error
		if tc, err = linkTLS(cfg.Secret, cfg.Name); err != nil {
			return nil, err
		}
	}
	if cfg.Leaf {
		return leafOptions(cfg, opts, tc), nil
	}
	opts.JetStream = true
	opts.StoreDir = cfg.Dir
	opts.SyncAlways = true
	opts.JetStreamDomain = JetStreamDomain
	if cfg.LeafListen != "" {
		host, port, err := splitHostPort(cfg.LeafListen)
		if err != nil {
			return nil, err
		}
		opts.LeafNode = server.LeafNodeOpts{
			Host:       host,
			Port:       port,
			Username:   leafUser,
			Password:   leafPassword(cfg.Secret),
			TLSConfig:  tc,
			TLSTimeout: linkTLSTimeout,
			// Leaf nodes bind to the global account, the one
			// everything of casp3r runs in (Account left empty).
		}
		// Leaf node connections have no ping interval of their own: a
		// dead leaf (or hub) whose TCP connection does not close is
		// noticed after PingInterval*MaxPingsOut, as on routes.
		opts.PingInterval, opts.MaxPingsOut = leafPingInterval, leafMaxPingsOut
	}
	if !cfg.clustered() {
		opts.DontListen = true
		return opts, nil
	}
	host, port, err := splitHostPort(cfg.RouteListen)
	if err != nil {
		return nil, err
	}
	pass := routePassword(cfg.Secret)
	opts.Cluster = server.ClusterOpts{
		Name:       ClusterName,
		Host:       host,
		Port:       port,
		Username:   routeUser,
		Password:   pass,
		TLSConfig:  tc,
		TLSTimeout: linkTLSTimeout,
		// A dead peer whose TCP connection does not close (power cut,
		// cable) is noticed after PingInterval*MaxPingsOut.
		PingInterval: 5 * time.Second,
		MaxPingsOut:  3,
		// The address the other nodes learn for this one by gossip (they
		// connect to every node they hear of); empty: the listen address.
		Advertise: cfg.Advertise,
	}
	// Our own address is in the list on purpose: nats-server sizes the
	// initial JetStream meta group from the configured routes (self-routes
	// are detected and dropped), so every node expects len(Peers)+1 voters.
	all := append([]string{cfg.RouteListen}, cfg.Peers...)
	for _, hp := range all {
		opts.Routes = append(opts.Routes, &url.URL{
			Scheme: "nats-route",
			User:   url.UserPassword(routeUser, pass),
			Host:   hp,
		})
	}
	return opts, nil
}

// Leaf node connection timing.
const (
	// linkTLSTimeout bounds the TLS handshake of a route or leaf link, in
	// seconds (nats-server's unit).
	linkTLSTimeout   = 5.0
	leafPingInterval = 5 * time.Second
	leafMaxPingsOut  = 3
	// leafReconnect is how long a leaf node waits before it dials the
	// next full node after losing its connection.
	leafReconnect = time.Second
)

// leafOptions turns opts into a leaf node's: no JetStream, no routes, no
// listener at all, one leaf node connection to a full node of cfg.Peers.
func leafOptions(cfg *Config, opts *server.Options, tc *tls.Config) *server.Options {
	// No routes, so the DontListen bug (see Start) does not bite: leaf
	// node connections are solicited before the client accept loop.
	opts.DontListen = true
	opts.PingInterval, opts.MaxPingsOut = leafPingInterval, leafMaxPingsOut
	pass := leafPassword(cfg.Secret)
	remote := &server.RemoteLeafOpts{TLS: true, TLSConfig: tc, TLSTimeout: linkTLSTimeout}
	for _, hp := range cfg.Peers {
		remote.URLs = append(remote.URLs, &url.URL{
			Scheme: "nats-leaf",
			User:   url.UserPassword(leafUser, pass),
			Host:   hp,
		})
	}
	opts.LeafNode = server.LeafNodeOpts{
		ReconnectInterval: leafReconnect,
		Remotes:           []*server.RemoteLeafOpts{remote},
	}
	return opts
}

// leafPassword derives the password of leaf node connections from the
// shared secret; it differs from the route password, so that what a leaf
// node's link reveals does not let anyone join as a voting node.
func leafPassword(secret string) string {
	return hex.EncodeToString(Derive([]byte(secret), "casp3r cluster leaf v1"))
}

// routePassword derives the route password from the shared secret, so that
// any byte of the secret is safe in a URL and the secret itself (which may
// serve other purposes later) never travels. It travels inside the route's
// TLS (see linkTLS).
func routePassword(secret string) string {
	return hex.EncodeToString(Derive([]byte(secret), "casp3r cluster route v1"))
}

// waitReady polls until the server accepts connections and, when clustered,
// JetStream has a meta leader.
func (n *Node) waitReady(ctx context.Context) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	ready := false
	for {
		if msg := n.natl.fatal.Load(); msg != nil {
			return fmt.Errorf("start nats: %s", *msg)
		}
		if !ready {
			// Checks at least once, polling for up to the duration.
			ready = n.srv.ReadyForConnections(time.Millisecond)
		}
		if ready {
			switch {
			case n.cfg.Leaf:
				if n.srv.NumLeafNodes() > 0 {
					return nil
				}
			case !n.cfg.clustered():
				return nil
			default:
				if jsz, err := n.srv.Jsz(nil); err == nil && jsz.Meta != nil && jsz.Meta.Leader != "" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			switch {
			case !ready:
				return fmt.Errorf("start nats: not ready: %w", ctx.Err())
			case n.cfg.Leaf:
				return fmt.Errorf("start nats: no leaf node connection to a full node (%s): %w",
					strings.Join(n.cfg.Peers, ", "), ctx.Err())
			}
			return fmt.Errorf("start nats: no jetstream meta leader (is a quorum of %d nodes up?): %w",
				len(n.cfg.Peers)/2+1, ctx.Err())
		case <-tick.C:
		}
	}
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Leaf reports whether the node is a leaf node.
func (n *Node) Leaf() bool { return n.cfg.Leaf }

// Hub returns the name of the full node a leaf node is connected to, ""
// while it is not connected or when the node is not a leaf.
func (n *Node) Hub() string {
	if !n.cfg.Leaf {
		return ""
	}
	lz, err := n.srv.Leafz(nil)
	if err != nil || len(lz.Leafs) == 0 {
		return ""
	}
	return lz.Leafs[0].Name
}

// LeafNodes returns the names of the leaf nodes connected to this full
// node.
func (n *Node) LeafNodes() []string {
	lz, err := n.srv.Leafz(nil)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range lz.Leafs {
		out = append(out, l.Name)
	}
	return out
}

// Shutdown closes the in-process connection and stops the server. Leaders
// on this node hand over to the others as part of nats-server's shutdown.
// If ctx ends first, Shutdown returns its error and the server goes on
// stopping in the background.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		if n.nc != nil {
			n.nc.Close()
		}
		go func() {
			n.stopServer()
			close(n.shutdownDone)
		}()
	})
	select {
	case <-n.shutdownDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster shutdown: %w", ctx.Err())
	}
}

func (n *Node) stopServer() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// inProcessOnly admits only in-process client connections (net.Pipe).
type inProcessOnly struct{}

func (inProcessOnly) Check(c server.ClientAuthentication) bool {
	a := c.RemoteAddress()
	return a != nil && a.Network() == "pipe"
}

// natsLogger adapts nats-server's logger to slog. nats-server calls Fatalf
// when it cannot go on (for instance, the route port is taken) and expects
// the process to exit; we record the message and let Start fail instead.
type natsLogger struct {
	log   *slog.Logger
	fatal atomic.Pointer[string]
}

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.fatal.CompareAndSwap(nil, &msg)
	l.log.Error(msg, "fatal", true)
}
