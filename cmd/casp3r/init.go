package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/term"

	"casp3r/internal/certs"
	"casp3r/internal/config"
	"casp3r/internal/server"
	"casp3r/internal/storage/sqlite"
)

func cmdInit(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlagSet("init")
	data := fs.String("data", "", "data folder to create")
	domain := fs.String("domain", "", "the XMPP domain (e.g. chat.example.org)")
	listen := fs.String("listen", "", "IP address every listener binds to (default: all)")
	force := fs.Bool("force", false, "overwrite an existing data folder's config, certificate and key")
	var cl clusterFlags
	fs.StringVar(&cl.name, "cluster-name", "", "this node's name in a cluster (default: the host name)")
	fs.StringVar(&cl.listen, "cluster-listen", "", "host:port where the other nodes connect (default: the --listen IP, port 7422)")
	fs.StringVar(&cl.peers, "cluster-peers", "", "the other nodes' host:port, comma-separated (first node of a new cluster)")
	fs.StringVar(&cl.join, "join", "", "host:port of a node of the cluster to join (with --token)")
	fs.StringVar(&cl.token, "token", "", "join token, printed by casp3r cluster token on a node of the cluster")
	fs.BoolVar(&cl.leaf, "leaf", false, "join as a leaf node: serves clients, holds no vote and no copy of the logs (--join names a full node's leaf address)")
	fs.StringVar(&cl.leafListen, "cluster-leaf-listen", "", "host:port where leaf nodes connect to this full node (default: none)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("init takes no arguments, got %q", pos[0])
	}
	if *data == "" {
		return usagef("init needs --data DIR")
	}
	clusterCfg, tok, err := cl.config(*listen)
	if err != nil {
		return err
	}
	if tok != nil {
		if *domain != "" && *domain != tok.Domain {
			return usagef("--domain %s differs from the cluster's domain %s (leave --domain out when joining)", *domain, tok.Domain)
		}
		*domain = tok.Domain
	}
	if *domain == "" {
		if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			fmt.Fprint(stdout, "Domain of this server (e.g. chat.example.org): ")
			line, _ := bufio.NewReader(stdin).ReadString('\n')
			*domain = strings.TrimSpace(line)
		}
		if *domain == "" {
			return usagef("init needs --domain DOMAIN")
		}
	}
	// Check everything before replacing anything: a bad flag leaves the old
	// config and secret as they were.
	newCfg := config.Default()
	newCfg.Domain, newCfg.Listen, newCfg.Cluster = *domain, *listen, clusterCfg
	if abs, err := filepath.Abs(*data); err == nil {
		newCfg.Dir = abs
	}
	if err := newCfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	secretPath := filepath.Join(*data, server.SecretFile)
	if _, err := os.Stat(secretPath); err == nil && tok != nil && !*force {
		return fmt.Errorf("%s exists; use --force to replace it with the cluster's secret", secretPath)
	}
	cfgPath := filepath.Join(*data, config.FileName)
	if _, err := os.Stat(cfgPath); err == nil {
		if !*force {
			return fmt.Errorf("%s already holds a server (%s exists); use --force to overwrite its config and certificate (accounts are kept)", *data, cfgPath)
		}
		if err := os.Remove(cfgPath); err != nil {
			return fmt.Errorf("remove old config: %w", err)
		}
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	if err := config.Write(*data, newCfg); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	cfg, err := config.Load(*data)
	if err != nil {
		_ = os.Remove(cfgPath)
		return err
	}
	if tok != nil {
		if err := server.WriteSecret(cfg.Dir, tok.Secret); err != nil {
			return err
		}
	}
	certPath, keyPath := cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key)
	if *force {
		for _, p := range []string{certPath, keyPath} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove old certificate: %w", err)
			}
		}
	}
	if err := certs.GenerateSelfSigned(cfg.Domain, certPath, keyPath); err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	if _, err := server.LoadOrCreateSecret(cfg.Dir); err != nil {
		return err
	}
	db, err := sqlite.Open(context.Background(), cfg.Path(cfg.Storage.Database), nil)
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	fmt.Fprintf(stdout, `Created %s for %s.

Next:
  casp3r user add --data %s admin@%s     create the first account
  casp3r serve --data %s                 run the server

Settings are in %s (every setting is listed there with its default).
`, *data, cfg.Domain, *data, cfg.Domain, *data, cfgPath)
	if cfg.Cluster.Enabled() {
		return printJoin(cfg, stdout)
	}
	return nil
}

// clusterFlags are init's cluster options.
type clusterFlags struct {
	name, listen, peers, join, token string
	leaf                             bool
	leafListen                       string
}

// defaultClusterPort is the route port when --cluster-listen has none.
const defaultClusterPort = "7422"

// config returns the [cluster] section the flags ask for (empty when none
// is given) and the decoded join token, if any.
func (f *clusterFlags) config(listenIP string) (config.Cluster, *joinToken, error) {
	c := config.Default().Cluster
	if f.name == "" && f.listen == "" && f.peers == "" && f.join == "" && f.token == "" && !f.leaf && f.leafListen == "" {
		return c, nil, nil
	}
	if (f.join == "") != (f.token == "") {
		return c, nil, usagef("--join and --token go together (print the token with casp3r cluster token on a node of the cluster)")
	}
	if f.leaf {
		return f.leafConfig(c)
	}
	c.LeafListen = f.leafListen
	if f.join != "" && f.peers != "" {
		return c, nil, usagef("--cluster-peers is for the first node; a joining node learns the peers from --token")
	}
	if f.join == "" && f.peers == "" {
		return c, nil, usagef("a cluster node needs --cluster-peers (first node) or --join and --token")
	}
	c.Name = f.name
	if c.Name == "" {
		c.Name = hostNodeName()
	}
	c.Listen = f.listen
	if c.Listen == "" {
		if listenIP == "" {
			return c, nil, usagef("--cluster-listen HOST:PORT is needed when --listen is not given")
		}
		c.Listen = net.JoinHostPort(listenIP, defaultClusterPort)
	}
	var tok *joinToken
	if f.token != "" {
		t, err := decodeJoinToken(f.token)
		if err != nil {
			return c, nil, err
		}
		if slices.Contains(t.Leaf, f.join) && !slices.Contains(t.Peers, f.join) {
			return c, nil, usagef("--join %s is a leaf address: add --leaf to join as a leaf node, or --join a route address (%s)",
				f.join, strings.Join(t.Peers, ", "))
		}
		tok = &t
		c.Peers = clusterPeers(c.Listen, []string{f.join}, t.Peers)
	} else {
		c.Peers = clusterPeers(c.Listen, strings.Split(f.peers, ","))
	}
	return c, tok, nil
}

// leafConfig is config for a leaf node: its peers are the full nodes'
// leaf addresses, --join's first, then the token's and --cluster-peers'.
func (f *clusterFlags) leafConfig(c config.Cluster) (config.Cluster, *joinToken, error) {
	switch {
	case f.join == "":
		return c, nil, usagef("--leaf needs --join HOST:PORT (a full node's leaf address, its [cluster] leaf_listen) and --token")
	case f.listen != "":
		return c, nil, usagef("a leaf node accepts no connections from other nodes: leave --cluster-listen out")
	case f.leafListen != "":
		return c, nil, usagef("--cluster-leaf-listen is for full nodes: leaf nodes do not accept leaf nodes")
	}
	t, err := decodeJoinToken(f.token)
	if err != nil {
		return c, nil, err
	}
	if slices.Contains(t.Peers, f.join) && !slices.Contains(t.Leaf, f.join) {
		hint := "set [cluster] leaf_listen on a full node (casp3r init --cluster-leaf-listen)"
		if len(t.Leaf) > 0 {
			hint = "such as " + strings.Join(t.Leaf, ", ")
		}
		return c, nil, usagef("--join %s is a route address: a leaf node connects to a full node's leaf address (%s)", f.join, hint)
	}
	c.Name = f.name
	if c.Name == "" {
		c.Name = hostNodeName()
	}
	c.Leaf, c.Listen = true, ""
	c.Peers = clusterPeers("", []string{f.join}, t.Leaf, strings.Split(f.peers, ","))
	return c, &t, nil
}

// hostNodeName makes a node name from the host name.
func hostNodeName() string {
	h, _ := os.Hostname()
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == '.':
			return trimName(b.String())
		}
	}
	return trimName(b.String())
}

func trimName(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	if s == "" {
		return "node"
	}
	return s
}

// writeSecret writes the cluster's shared secret as the node secret.
// printJoin tells how the other nodes join.
func printJoin(cfg *config.Config, stdout io.Writer) error {
	cl := cfg.Cluster
	if cl.Leaf {
		fmt.Fprintf(stdout, "\nThis node is %q, a leaf node of a cluster: it serves clients, holds no vote and no copy of the logs,\n"+
			"and connects to one of the full nodes at %s.\n", cl.Name, strings.Join(cl.Peers, ", "))
		if !clusterSupport {
			fmt.Fprintln(stdout, "Note: this casp3r was built without cluster support; serve needs a build made with -tags cluster.")
		}
		return nil
	}
	fmt.Fprintf(stdout, "\nThis node is %q of a cluster; it listens for the other nodes on %s.\n", cl.Name, cl.Listen)
	if !clusterSupport {
		fmt.Fprintln(stdout, "Note: this casp3r was built without cluster support; serve needs a build made with -tags cluster.")
	}
	fmt.Fprintf(stdout, "Start the nodes of a new cluster together: each waits for a majority of them.\n")
	fmt.Fprintf(stdout, "Another node joins with:\n  casp3r init --data DIR --join %s --token TOKEN --cluster-name NAME --cluster-listen HOST:PORT\n", cl.RouteAddress())
	if addr := leafAddr(cl); addr != "" {
		fmt.Fprintf(stdout, "A leaf node (serves clients, no vote) joins with:\n  casp3r init --data DIR --leaf --join %s --token TOKEN --cluster-name NAME\n", addr)
	}
	var buf strings.Builder
	if err := clusterToken(cfg, &buf); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Join token: %s", buf.String())
	return nil
}
