package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"casp3r/internal/c2s"
	"casp3r/internal/config"
	"casp3r/internal/jid"
	"casp3r/internal/mod/offline"
	"casp3r/internal/router"
	"casp3r/internal/storage/sqlite"
)

// Cluster is the engine that makes this node one of several serving the
// domain (the distributed server). The server starts it after wiring the
// router and storage and before opening any listener, and shuts it down
// after the last client session has ended.
type Cluster interface {
	// Sync returns once this node has applied every change committed
	// through any node before the call.
	Sync(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// ClusterParts are the parts of a node a cluster engine connects to.
type ClusterParts struct {
	Config   config.Cluster
	Dir      string // the engine's own storage: DATA/cluster
	Secret   []byte // keys/server.secret, shared by every node
	Domain   jid.JID
	Router   *router.Router
	Store    *sqlite.DB
	Presence router.PresenceHandler
	// Redeliver delivers the offline messages another node stored for
	// user to user's session on this node, if the message would go there.
	Redeliver func(ctx context.Context, user string)
	// ClientPorts returns the ports the client listeners are bound to
	// (STARTTLS, direct TLS; 0 while not listening), which the other nodes
	// send clients to when this node has room and they have not.
	ClientPorts func() (starttls, directTLS int)
	Logger      *slog.Logger
}

// ClusterStarter starts a cluster engine; it returns once this node has
// joined a quorum of the cluster, or ctx ends.
type ClusterStarter func(ctx context.Context, p ClusterParts) (Cluster, error)

// Option changes how New builds a server.
type Option func(*options)

type options struct {
	cluster    ClusterStarter
	listenAddr func(port int) string
}

// WithListenAddr replaces how a configured port becomes the address to bind
// (tests bind kernel-chosen ports with "127.0.0.1:0").
func WithListenAddr(fn func(port int) string) Option {
	return func(o *options) { o.listenAddr = fn }
}

// WithCluster lets a configuration with a [cluster] section start the
// cluster engine; without it such a configuration is refused. cmd/casp3r
// passes it when built with cluster support.
func WithCluster(start ClusterStarter) Option {
	return func(o *options) { o.cluster = start }
}

// ErrNoClusterSupport is returned by New for a configuration with a
// [cluster] section when no ClusterStarter was given.
var ErrNoClusterSupport = errors.New("this casp3r was built without cluster support: " +
	"use a build made with \"go build -tags cluster\" (make build-cluster), or remove [cluster] from casp3r.toml")

// startCluster starts the engine when the configuration asks for one.
func (s *Server) startCluster(ctx context.Context, o options, secret []byte, presence router.PresenceHandler, off *offline.Module) error {
	if !s.cfg.Cluster.Enabled() {
		return nil // New refused [cluster] without a starter
	}
	c, err := o.cluster(ctx, ClusterParts{
		Config:    s.cfg.Cluster,
		Dir:       filepath.Join(s.cfg.Dir, "cluster"),
		Secret:    secret,
		Domain:    s.domain,
		Router:    s.router,
		Store:     s.db,
		Presence:  presence,
		Redeliver: off.Redeliver,
		ClientPorts: func() (int, int) {
			return addrPort(s.Addr(ListenerC2S)), addrPort(s.Addr(ListenerDirectTLS))
		},
		Logger: s.log.With("part", "cluster"),
	})
	if err != nil {
		return err
	}
	s.cluster = c
	// Load sharing: beyond [cluster] max_clients sessions, new clients go
	// to the least-loaded node (see-other-host). Without a limit the c2s
	// server asks nothing.
	if r, ok := c.(c2s.Redirector); ok && s.cfg.Cluster.MaxClients > 0 {
		s.c2s.SetRedirector(r)
	}
	off.Sync = c.Sync
	return nil
}

// addrPort returns the port of a bound TCP address, 0 for none.
func addrPort(a net.Addr) int {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.Port
	}
	return 0
}

// ClusterStatusFile is the name of the status file a running node keeps in its
// cluster folder (DATA/cluster), rewritten every second.
const ClusterStatusFile = "status.json"

// ClusterStatus is a node's view of the cluster, as `casp3r cluster status`
// shows it.
type ClusterStatus struct {
	Self      string              `json:"self"`
	Updated   time.Time           `json:"updated"`
	LogLeader string              `json:"log_leader"` // "" while the log has no leader
	LastPos   uint64              `json:"last_pos"`   // the shared log's last position
	Nodes     []ClusterNodeStatus `json:"nodes"`
}

// ClusterNodeStatus is one node in a ClusterStatus.
type ClusterNodeStatus struct {
	Name     string    `json:"name"`
	Up       bool      `json:"up"`
	Users    int       `json:"users"`   // client sessions bound on the node
	Applied  uint64    `json:"applied"` // its apply cursor in the shared log
	Lag      uint64    `json:"lag"`     // LastPos - Applied
	LastSeen time.Time `json:"last_seen"`
	// Load sharing: the node's [cluster] max_clients (0 = no limit) and
	// the address other nodes send clients to ("" = none yet).
	MaxClients    int    `json:"max_clients,omitempty"`
	ClientAddress string `json:"client_address,omitempty"`
	Leaf          bool   `json:"leaf,omitempty"` // a leaf node: serves clients, holds no vote
}

// ReadClusterStatus reads the status file of the node whose cluster folder is dir.
func ReadClusterStatus(dir string) (ClusterStatus, error) {
	var st ClusterStatus
	b, err := os.ReadFile(filepath.Join(dir, ClusterStatusFile))
	if err != nil {
		return st, fmt.Errorf("read cluster status: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read cluster status: %w", err)
	}
	return st, nil
}
