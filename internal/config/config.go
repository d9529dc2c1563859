// Package config reads, checks and writes the server's configuration file,
// casp3r.toml, which lives in the data folder.
//
// The file is TOML (https://toml.io, v1.0). Before it is decoded, ${NAME} in
// any line that is not a comment is replaced by the value of the environment
// variable NAME; $$ stands for a literal $. A variable that is not set is an
// error, so a typo does not silently become an empty value.
//
// Settings missing from the file take their value from [Default]; keys the
// server does not know are an error naming them. Relative paths in the file
// are relative to the data folder (see [Config.Path]).
//
// Users, invites and rooms are not configuration: they live in storage.
package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// FileName is the name of the configuration file inside the data folder.
const FileName = "casp3r.toml"

// Registration policies.
const (
	RegistrationInvite = "invite" // accounts are created from invite links (default)
	RegistrationOpen   = "open"   // anyone may register, also in-band (XEP-0077)
	RegistrationClosed = "closed" // only an admin creates accounts
)

// Config is the whole configuration of one server node.
type Config struct {
	Dir          string  `toml:"-"`            // data folder, set by Load
	Domain       string  `toml:"domain"`       // the XMPP domain served
	Listen       string  `toml:"listen"`       // IP every listener binds to; "" = all addresses
	Registration string  `toml:"registration"` // RegistrationInvite, RegistrationOpen or RegistrationClosed
	Federation   string  `toml:"federation"`   // FederationOpen, FederationDenylist, FederationAllowlist or FederationPrivate
	C2S          C2S     `toml:"c2s"`
	S2S          S2S     `toml:"s2s"`
	HTTPS        HTTPS   `toml:"https"`
	TLS          TLS     `toml:"tls"`
	Storage      Storage `toml:"storage"`
	Limits       Limits  `toml:"limits"`
	Log          Log     `toml:"log"`
	Cluster      Cluster `toml:"cluster"`
}

// C2S configures client-to-server connections (RFC 6120).
type C2S struct {
	Port            int  `toml:"port"`             // STARTTLS port
	DirectTLSPort   int  `toml:"direct_tls_port"`  // direct TLS port (XEP-0368); 0 = off
	RequireTLS      bool `toml:"require_tls"`      // no authentication before TLS
	AllowPlain      bool `toml:"allow_plain"`      // offer SASL PLAIN (only ever over TLS)
	ScramIterations int  `toml:"scram_iterations"` // PBKDF2 iterations for new SCRAM keys
	MaxConnections  int  `toml:"max_connections"`  // client connections at once
}

// Federation modes: whom the server exchanges stanzas with.
const (
	FederationOpen      = "open"      // every server, except denied domains
	FederationDenylist  = "denylist"  // the same: every server except denied domains
	FederationAllowlist = "allowlist" // only allowed domains
	FederationPrivate   = "private"   // no other server at all
)

// S2S configures server-to-server connections (federation, RFC 6120).
type S2S struct {
	Port          int               `toml:"port"`            // STARTTLS port; 0 = no incoming federation
	DirectTLSPort int               `toml:"direct_tls_port"` // direct TLS port (XEP-0368); 0 = off
	Dialback      bool              `toml:"dialback"`        // accept and use Server Dialback (XEP-0220) where certificates do not validate
	CAFile        string            `toml:"ca_file"`         // extra trusted CA certificates (PEM) for peers; "" = system roots only
	StanzaBytes   int               `toml:"stanza_bytes"`    // largest stanza from another server
	IdleTimeout   Duration          `toml:"idle_timeout"`    // close connections idle this long
	Allow         []string          `toml:"allow"`           // domains allowed (allowlist mode)
	Deny          []string          `toml:"deny"`            // domains refused in every mode
	Routes        map[string]string `toml:"routes"`          // domain → host:port, overriding DNS
}

// HTTPS configures the web listener (web app, WebSocket, upload, invites).
type HTTPS struct {
	Port int `toml:"port"` // 0 = off
}

// TLS names the certificate and key files (PEM).
type TLS struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// Storage configures the database.
type Storage struct {
	Database   string `toml:"database"`    // SQLite file
	OfflineMax int    `toml:"offline_max"` // offline messages kept per user; 0 = none
}

// Limits bounds what one stream may cost the server.
type Limits struct {
	StanzaBytes        int      `toml:"stanza_bytes"`         // largest stanza after authentication
	PreAuthStanzaBytes int      `toml:"preauth_stanza_bytes"` // largest stanza before authentication
	Depth              int      `toml:"depth"`                // deepest element nesting
	Attrs              int      `toml:"attrs"`                // most attributes on one element
	StanzasPerSecond   int      `toml:"stanzas_per_second"`   // sustained rate; bursts up to twice this
	HandshakeTimeout   Duration `toml:"handshake_timeout"`    // stream open + TLS + SASL + bind
	StanzaTimeout      Duration `toml:"stanza_timeout"`       // to finish a stanza once begun
	GCPercent          int      `toml:"gc_percent"`           // Go garbage collector target (GOGC); lower holds less memory for more CPU
	// Memory is a soft limit on the memory the Go runtime holds (heap,
	// stacks and its own structures, not the binary's pages): as it nears
	// the limit the garbage collector runs more often (Go's GOMEMLIMIT).
	// 0 = no limit.
	Memory ByteSize `toml:"memory"`
}

// Cluster joins this node to other nodes serving the same domain (the
// distributed server). A node without a name is a single node and starts
// nothing of the cluster.
type Cluster struct {
	Name       string   `toml:"name"`        // this node's name, unique in the cluster; "" = no cluster
	Listen     string   `toml:"listen"`      // host:port where the other nodes connect (routes)
	Advertise  string   `toml:"advertise"`   // host:port the other nodes reach this one at, if not listen
	Peers      []string `toml:"peers"`       // the other nodes' route addresses
	Replicas   int      `toml:"replicas"`    // copies of every log (capped at the number of nodes)
	SessionTTL Duration `toml:"session_ttl"` // how long a session entry outlives its last refresh
	// Load sharing: beyond MaxClients sessions, a new client is sent to the
	// least-loaded node with see-other-host (0 = no limit).
	MaxClients    int    `toml:"max_clients"`
	ClientAddress string `toml:"client_address"` // host[:port] clients reach this node at; "" = derived
	// Leaf nodes serve clients but hold no vote and no copy of the logs.
	Leaf       bool   `toml:"leaf"`        // this node is a leaf: peers are the full nodes' leaf_listen addresses
	LeafListen string `toml:"leaf_listen"` // host:port where leaf nodes connect to this full node; "" = none
}

// Enabled reports whether the node is part of a cluster.
func (c *Cluster) Enabled() bool { return c.Name != "" }

// RouteAddress is the address the other nodes reach this one's routes at:
// advertise if set, else listen.
func (c *Cluster) RouteAddress() string {
	if c.Advertise != "" {
		return c.Advertise
	}
	return c.Listen
}

// Log configures logging.
type Log struct {
	Level string `toml:"level"` // "debug", "info", "warn" or "error"
}

// Duration is a time.Duration written in the file as a string such as
// "30s" or "2m30s".
type Duration struct{ time.Duration }

// UnmarshalText parses a duration such as "30s".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like \"30s\" or \"2m\")", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a string such as "30s".
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// ByteSize is a number of bytes written in the file as a string such as
// "64MB" or "1GB" (KB, MB and GB are 1024, 1024² and 1024³ bytes; KiB,
// MiB and GiB are the same), or as a number of bytes.
type ByteSize int64

// UnmarshalText reads a size such as "64MB", "512 KiB" or "1048576"; "" is 0.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if s == "" {
		*b = 0
		return nil
	}
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	unit := strings.ToUpper(strings.TrimSpace(s[i:]))
	mult := int64(0)
	switch unit {
	case "", "B":
		mult = 1
	case "K", "KB", "KIB":
		mult = 1 << 10
	case "M", "MB", "MIB":
		mult = 1 << 20
	case "G", "GB", "GIB":
		mult = 1 << 30
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if i == 0 || mult == 0 || err != nil || n > (1<<63-1)/mult {
		return fmt.Errorf("%q is not a size (write it like \"64MB\" or \"1GB\")", text)
	}
	*b = ByteSize(n * mult)
	return nil
}

// MarshalText writes the size with the largest unit that divides it, such
// as "64MB"; 0 is "".
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// String returns the size as MarshalText writes it.
func (b ByteSize) String() string {
	if b == 0 {
		return ""
	}
	units := [...]struct {
		name string
		size int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}}
	for _, u := range units {
		if int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Default returns the default configuration. Domain is empty, so it does
// not pass Validate until a domain is set.
func Default() Config {
	return Config{
		Registration: RegistrationInvite,
		Federation:   FederationOpen,
		C2S: C2S{
			Port:            5222,
			DirectTLSPort:   5223,
			RequireTLS:      true,
			AllowPlain:      true,
			ScramIterations: 4096,
			MaxConnections:  10000,
		},
		S2S: S2S{
			Port:          5269,
			DirectTLSPort: 5270,
			Dialback:      true,
			StanzaBytes:   524288,
			IdleTimeout:   Duration{5 * time.Minute},
			Allow:         []string{},
			Deny:          []string{},
			Routes:        map[string]string{},
		},
		HTTPS: HTTPS{Port: 5443},
		TLS: TLS{
			Cert: "tls/cert.pem",
			Key:  "tls/key.pem",
		},
		Storage: Storage{
			Database:   "casp3r.db",
			OfflineMax: 1000,
		},
		Limits: Limits{
			StanzaBytes:        262144,
			PreAuthStanzaBytes: 10240,
			Depth:              32,
			Attrs:              64,
			StanzasPerSecond:   200,
			HandshakeTimeout:   Duration{30 * time.Second},
			StanzaTimeout:      Duration{time.Minute},
			GCPercent:          50,
		},
		Log: Log{Level: "info"},
		Cluster: Cluster{
			Peers:      []string{},
			Replicas:   3,
			SessionTTL: Duration{5 * time.Minute},
		},
	}
}

// Load reads dir/casp3r.toml over [Default], expanding environment
// variables, and validates the result. Dir is set to dir made absolute.
func Load(dir string) (*Config, error) {
	return load(dir, os.LookupEnv)
}

func load(dir string, lookup func(string) (string, bool)) (*Config, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	path := filepath.Join(abs, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := parse(string(data), lookup)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	c.Dir = abs
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// parse expands and decodes the file text over the defaults. It does not
// validate.
func parse(text string, lookup func(string) (string, bool)) (*Config, error) {
	text, err := expandEnv(text, lookup)
	if err != nil {
		return nil, err
	}
	c := Default()
	md, err := toml.Decode(text, &c)
	if err != nil {
		return nil, err
	}
	if keys := unknownKeys(md.Undecoded()); len(keys) > 0 {
		return nil, fmt.Errorf("unknown keys (misspelled or misplaced?): %s", strings.Join(keys, ", "))
	}
	return &c, nil
}

// unknownKeys returns the undecoded keys, leaving out a table when keys
// inside it are listed too.
func unknownKeys(undecoded []toml.Key) []string {
	var out []string
	for i, k := range undecoded {
		s := k.String()
		parent := false
		for j, o := range undecoded {
			if j != i && len(o) > len(k) && strings.HasPrefix(o.String(), s+".") {
				parent = true
				break
			}
		}
		if !parent {
			out = append(out, s)
		}
	}
	return out
}

// expandEnv replaces ${NAME} (and $NAME) with the environment variable's
// value, and $$ with $, in every line that is not a comment. Line numbers
// are kept so that decode errors point at the right line.
func expandEnv(text string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(text, "$") {
		return text, nil
	}
	var missing []string
	lineNo := 0
	mapping := func(name string) string {
		if name == "$" {
			return "$"
		}
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, fmt.Sprintf("line %d: environment variable %s is not set", lineNo, name))
		}
		return v
	}
	lines := strings.SplitAfter(text, "\n")
	for i, l := range lines {
		lineNo = i + 1
		if !strings.Contains(l, "$") || strings.HasPrefix(strings.TrimLeft(l, " \t"), "#") {
			continue
		}
		lines[i] = os.Expand(l, mapping)
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("expand environment: %s", strings.Join(missing, "; "))
	}
	return strings.Join(lines, ""), nil
}

// Path resolves a path from the file against the data folder. Absolute
// paths stay as they are; "" stays "".
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// ListenAddr returns the address a listener on port binds to, such as
// "192.168.1.5:5222" or ":5222".
func (c *Config) ListenAddr(port int) string {
	return net.JoinHostPort(c.Listen, strconv.Itoa(port))
}
