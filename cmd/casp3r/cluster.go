package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"casp3r/internal/config"
	"casp3r/internal/server"
	"casp3r/internal/storage/sqlite"
)

// statusStale is how old a node's status file may be before `cluster
// status` says the node is not running.
const statusStale = 10 * time.Second

// cmdCluster shows and prepares the cluster a node belongs to.
func cmdCluster(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("cluster needs a subcommand: status, token or digest")
	}
	sub := args[0]
	fs := newFlagSet("cluster " + sub)
	data := fs.String("data", "", "data folder")
	asJSON := false
	if sub == "status" {
		fs.BoolVar(&asJSON, "json", false, "print the status as JSON")
	}
	switch sub {
	case "status", "token", "digest":
	default:
		return usagef("unknown cluster subcommand %q (status, token, digest)", sub)
	}
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("cluster %s takes no arguments, got %q", sub, pos[0])
	}
	if *data == "" {
		return usagef("cluster %s needs --data DIR", sub)
	}
	cfg, err := config.Load(*data)
	if err != nil {
		return err
	}
	switch sub {
	case "token":
		return clusterToken(cfg, stdout)
	case "digest":
		return clusterDigest(cfg, stdout)
	}
	return clusterStatus(cfg, asJSON, stdout)
}

func notClustered(cfg *config.Config) error {
	return fmt.Errorf("%s is not part of a cluster ([cluster] name is empty in %s)", cfg.Dir, config.FileName)
}

// clusterToken prints the token another node joins with.
func clusterToken(cfg *config.Config, stdout io.Writer) error {
	if !cfg.Cluster.Enabled() {
		return notClustered(cfg)
	}
	if cfg.Cluster.Leaf {
		return fmt.Errorf("node %s is a leaf node, which knows no route addresses: print the token on a full node", cfg.Cluster.Name)
	}
	secret, err := server.LoadOrCreateSecret(cfg.Dir)
	if err != nil {
		return err
	}
	t := joinToken{
		Domain: cfg.Domain,
		Secret: secret,
		Peers:  append([]string{cfg.Cluster.RouteAddress()}, cfg.Cluster.Peers...),
	}
	if addr := leafAddr(cfg.Cluster); addr != "" {
		t.Leaf = []string{addr}
	}
	tok, err := encodeJoinToken(t)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// clusterDigest prints the digest of the node's views: equal digests on two
// nodes mean equal accounts, rosters, offline messages, vCards, roles and
// federation rules.
func clusterDigest(cfg *config.Config, stdout io.Writer) error {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, cfg.Path(cfg.Storage.Database), nil)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	d, err := db.ViewsDigest(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, d)
	return nil
}

// clusterStatus prints the running node's view of the cluster.
func clusterStatus(cfg *config.Config, asJSON bool, stdout io.Writer) error {
	if !cfg.Cluster.Enabled() {
		return notClustered(cfg)
	}
	st, err := server.ReadClusterStatus(filepath.Join(cfg.Dir, "cluster"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("node %s has not run yet (start it with casp3r serve --data %s)", cfg.Cluster.Name, cfg.Dir)
	}
	if err != nil {
		return err
	}
	if age := time.Since(st.Updated); age > statusStale {
		return fmt.Errorf("node %s is not running: its status is %s old", st.Self, age.Round(time.Second))
	}
	if asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	leader := st.LogLeader
	if leader == "" {
		leader = "none (no quorum: writes wait)"
	}
	fmt.Fprintf(stdout, "Cluster of %s, seen from node %s at %s. Log leader: %s, log position %d.\n\n",
		cfg.Domain, st.Self, st.Updated.Local().Format(time.TimeOnly), leader, st.LastPos)
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tSTATE\tUSERS\tAPPLIED\tLAG\tLAST SEEN\tCLIENTS AT")
	for _, n := range st.Nodes {
		state := "up"
		if !n.Up {
			state = "DOWN"
		}
		if n.Leaf {
			state += " (leaf)"
		}
		users := fmt.Sprint(n.Users)
		if n.MaxClients > 0 {
			users += fmt.Sprintf(" of %d", n.MaxClients)
		}
		at := n.ClientAddress
		if at == "" {
			at = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s ago\t%s\n", n.Name, state, users, n.Applied, n.Lag,
			st.Updated.Sub(n.LastSeen).Round(time.Second), at)
	}
	return w.Flush()
}

// joinToken is what a new node needs to join: the domain, the shared
// secret and the nodes' route addresses; for a leaf node, the issuing
// node's leaf address when it has one (tokens of older versions have none).
type joinToken struct {
	Domain string   `json:"d"`
	Secret []byte   `json:"s"`
	Peers  []string `json:"p"`
	Leaf   []string `json:"l,omitempty"`
}

// leafAddr returns the address at which leaf nodes reach the full node
// configured by cl: its leaf_listen, with the host of advertise or listen
// when it listens on all addresses; "" when it takes no leaf nodes or the
// address is not known.
func leafAddr(cl config.Cluster) string {
	host, port, err := net.SplitHostPort(cl.LeafListen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return cl.LeafListen
	}
	for _, hp := range []string{cl.Advertise, cl.Listen} {
		h, _, err := net.SplitHostPort(hp)
		if ip := net.ParseIP(h); err == nil && h != "" && (ip == nil || !ip.IsUnspecified()) {
			return net.JoinHostPort(h, port)
		}
	}
	return ""
}

const joinTokenPrefix = "casp3r-join-"

func encodeJoinToken(t joinToken) (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("make join token: %w", err)
	}
	return joinTokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func decodeJoinToken(s string) (joinToken, error) {
	var t joinToken
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), joinTokenPrefix)
	if !ok {
		return t, fmt.Errorf("join token: does not start with %q (print one with casp3r cluster token on a node)", joinTokenPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(b64)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil {
		return t, fmt.Errorf("join token: damaged (copy it again whole): %w", err)
	}
	if t.Domain == "" || len(t.Secret) < 32 || len(t.Peers) == 0 {
		return t, errors.New("join token: incomplete (copy it again whole)")
	}
	return t, nil
}

// clusterPeers returns the route addresses in lists, without duplicates
// and without self.
func clusterPeers(self string, lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, p := range l {
			p = strings.TrimSpace(p)
			if p != "" && p != self && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}
