package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// defaultFile is the commented configuration file written by WriteDefault.
// Each {{name}} in it is replaced by the value fileValues gives for it, so
// values cannot drift from Default; the tests check that every setting is
// present. (It is not a text/template: executing one keeps every exported
// method of every type in the binary, about 1.3 MB of the server's memory.)
const defaultFile = `# CASP3R configuration
#
# This file lives in the data folder. Paths in it are relative to the data
# folder unless they start with "/". Every setting is shown with its default
# value; if you delete a setting, the server uses that default.
#
# A value may take text from an environment variable: ${NAME} is replaced by
# the value of NAME when the server starts, e.g. domain = "${CASP3R_DOMAIN}".
# Write $$ for a literal "$". A variable that is not set is an error. Lines
# starting with "#" are comments and are never expanded.
#
# After editing, check the file with "casp3r check-config".

# The XMPP domain: addresses on this server look like name@domain.
# A DNS name (chat.example.org) or an IP address.
domain = {{q .Domain}}

# The IP address every listener binds to; "" listens on all addresses.
listen = {{q .Listen}}

# Who may create an account: "invite" (only with an invite link), "open"
# (anyone, also from XMPP apps) or "closed" (only an admin).
registration = {{q .Registration}}

# Which other servers this one talks to (federation): "open" (all),
# "denylist" (all but the denied ones), "allowlist" (only the allowed ones)
# or "private" (none). Denied domains are refused in every mode. Lists are
# in [s2s]; "casp3r federation allow|deny DOMAIN" changes them while the
# server runs.
federation = {{q .Federation}}

# Connections from XMPP apps (clients).
[c2s]
# Port for connections that start TLS after connecting (the standard port).
port = {{.C2S.Port}}
# Port for connections that begin with TLS (XEP-0368); 0 turns it off.
direct_tls_port = {{.C2S.DirectTLSPort}}
# Refuse to log anyone in before the connection is encrypted.
require_tls = {{.C2S.RequireTLS}}
# Offer plain password login (SASL PLAIN, only ever over TLS) for older apps.
allow_plain = {{.C2S.AllowPlain}}
# Hashing rounds for stored passwords (SCRAM); more is safer and slower.
scram_iterations = {{.C2S.ScramIterations}}
# The most app connections open at once.
max_connections = {{.C2S.MaxConnections}}

# Connections with other servers (federation).
[s2s]
# Port other servers connect to (the standard port); 0 refuses incoming
# federation.
port = {{.S2S.Port}}
# Port for server connections that begin with TLS (XEP-0368); 0 turns it off.
direct_tls_port = {{.S2S.DirectTLSPort}}
# Accept servers whose certificate cannot be checked (self-signed, on a LAN)
# by calling them back (Server Dialback); false requires valid certificates.
dialback = {{.S2S.Dialback}}
# Extra certificate authorities (PEM file) trusted for other servers.
ca_file = {{q .S2S.CAFile}}
# Largest stanza in bytes from another server.
stanza_bytes = {{.S2S.StanzaBytes}}
# Close a connection to another server after this long without traffic.
idle_timeout = {{q .S2S.IdleTimeout.String}}
# Domains allowed in "allowlist" mode, e.g. ["example.org", "friends.net"].
allow = {{list .S2S.Allow}}
# Domains refused in every mode.
deny = {{list .S2S.Deny}}

# Where to reach a domain, instead of asking DNS: "domain" = "host:port".
# Useful on a LAN, e.g. "pi.home" = "192.168.1.20:5269".
[s2s.routes]
{{table .S2S.Routes}}
# The web listener: web app, XMPP over WebSocket, file upload, invite pages.
[https]
# Port for HTTPS; 0 turns it off.
port = {{.HTTPS.Port}}

# The TLS certificate; "casp3r init" creates a self-signed one.
[tls]
# Certificate chain file (PEM).
cert = {{q .TLS.Cert}}
# Private key file (PEM).
key = {{q .TLS.Key}}

[storage]
# The SQLite database file.
database = {{q .Storage.Database}}
# The most messages kept for a user while they are offline; 0 keeps none.
offline_max = {{.Storage.OfflineMax}}

# What one connection may cost the server.
[limits]
# Largest stanza in bytes once logged in (at least 10000).
stanza_bytes = {{.Limits.StanzaBytes}}
# Largest stanza in bytes before logging in.
preauth_stanza_bytes = {{.Limits.PreAuthStanzaBytes}}
# Deepest nesting of XML elements.
depth = {{.Limits.Depth}}
# The most attributes on one XML element.
attrs = {{.Limits.Attrs}}
# Stanzas per second per connection; short bursts may reach twice this.
stanzas_per_second = {{.Limits.StanzasPerSecond}}
# Time allowed to connect, start TLS and log in, e.g. "30s" or "1m".
handshake_timeout = {{q .Limits.HandshakeTimeout.String}}
# Time a logged-in client has to finish a stanza it began sending.
stanza_timeout = {{q .Limits.StanzaTimeout.String}}
# How much garbage memory may grow before it is collected, in percent of the
# memory in use (Go's GOGC; the GOGC environment variable wins). Lower keeps
# the server smaller for a little more CPU.
gc_percent = {{.Limits.GCPercent}}
# The most memory the server should hold, e.g. "256MB" or "1GB"; "" = no
# limit (the GOMEMLIMIT environment variable wins). Near it, garbage is
# collected more often: set it when the Pi runs other things too.
memory = {{q .Limits.Memory.String}}

[log]
# How much to log: "debug", "info", "warn" or "error".
level = {{q .Log.Level}}

# Several nodes serving this domain as one server (the distributed server).
# "casp3r init --join" fills this in; a node without a name is a single node.
# Every node of a cluster shares keys/server.secret, which also authenticates
# the connections between nodes.
[cluster]
# This node's name, unique in the cluster (a-z, 0-9, - and _); "" = no cluster.
name = {{q .Cluster.Name}}
# Where the other nodes connect to this one ("host:port").
listen = {{q .Cluster.Listen}}
# The address the other nodes should use for this one, when it is not the
# listen address (listening on 0.0.0.0, or behind NAT); "" = listen.
advertise = {{q .Cluster.Advertise}}
# The other nodes' addresses, e.g. ["10.0.0.2:7422", "10.0.0.3:7422"].
peers = {{list .Cluster.Peers}}
# Copies kept of every account's history (at most the number of nodes).
replicas = {{.Cluster.Replicas}}
# How long a node's sessions outlive it if it stops refreshing them.
session_ttl = {{q .Cluster.SessionTTL.String}}
# Load sharing: with this many clients connected, a new client is sent to the
# least-loaded node instead (see-other-host); 0 = no limit.
max_clients = {{.Cluster.MaxClients}}
# The address clients reach this node at ("host" or "host:port"), given to
# the clients another node sends here; "" = the host of advertise or listen,
# with this node's client port.
client_address = {{q .Cluster.ClientAddress}}
# A leaf node serves clients but holds no vote and no copy of the logs: for a
# weak box or one behind NAT. Its peers are the full nodes' leaf_listen
# addresses.
leaf = {{.Cluster.Leaf}}
# On a full node: where leaf nodes connect ("host:port"); "" = no leaf nodes.
leaf_listen = {{q .Cluster.LeafListen}}
`

// WriteDefault writes dir/casp3r.toml: every setting with its default value
// and a comment explaining it, with domain and listen filled in. It creates
// dir (0700) if needed and writes the file with mode 0600. It refuses,
// with an error wrapping os.ErrExist, if the file exists, and refuses a
// domain or listen address that would not pass Validate.
func WriteDefault(dir, domain, listen string) error {
	c := Default()
	c.Domain = domain
	c.Listen = listen
	return Write(dir, c)
}

// Write writes dir/casp3r.toml like WriteDefault, with the settings of c
// (the file's comments are the same). It refuses a c that does not pass
// Validate.
func Write(dir string, c Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("write default config: %w", err)
	}
	text, err := render(defaultFile, fileValues(&c))
	if err != nil {
		return fmt.Errorf("write default config: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write default config: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write default config: %w", err)
	}
	_, err = f.WriteString(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write default config: %w", errors.Join(err, os.Remove(path)))
	}
	return nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// fileValues returns the value of each {{name}} of defaultFile for c.
func fileValues(c *Config) map[string]string {
	q := tomlString
	d := strconv.Itoa
	b := strconv.FormatBool
	return map[string]string{
		"q .Domain":                         q(c.Domain),
		"q .Listen":                         q(c.Listen),
		"q .Registration":                   q(c.Registration),
		"q .Federation":                     q(c.Federation),
		".C2S.Port":                         d(c.C2S.Port),
		".C2S.DirectTLSPort":                d(c.C2S.DirectTLSPort),
		".C2S.RequireTLS":                   b(c.C2S.RequireTLS),
		".C2S.AllowPlain":                   b(c.C2S.AllowPlain),
		".C2S.ScramIterations":              d(c.C2S.ScramIterations),
		".C2S.MaxConnections":               d(c.C2S.MaxConnections),
		".S2S.Port":                         d(c.S2S.Port),
		".S2S.DirectTLSPort":                d(c.S2S.DirectTLSPort),
		".S2S.Dialback":                     b(c.S2S.Dialback),
		"q .S2S.CAFile":                     q(c.S2S.CAFile),
		".S2S.StanzaBytes":                  d(c.S2S.StanzaBytes),
		"q .S2S.IdleTimeout.String":         q(c.S2S.IdleTimeout.String()),
		"list .S2S.Allow":                   tomlList(c.S2S.Allow),
		"list .S2S.Deny":                    tomlList(c.S2S.Deny),
		"table .S2S.Routes":                 tomlTable(c.S2S.Routes),
		".HTTPS.Port":                       d(c.HTTPS.Port),
		"q .TLS.Cert":                       q(c.TLS.Cert),
		"q .TLS.Key":                        q(c.TLS.Key),
		"q .Storage.Database":               q(c.Storage.Database),
		".Storage.OfflineMax":               d(c.Storage.OfflineMax),
		".Limits.StanzaBytes":               d(c.Limits.StanzaBytes),
		".Limits.PreAuthStanzaBytes":        d(c.Limits.PreAuthStanzaBytes),
		".Limits.Depth":                     d(c.Limits.Depth),
		".Limits.Attrs":                     d(c.Limits.Attrs),
		".Limits.StanzasPerSecond":          d(c.Limits.StanzasPerSecond),
		"q .Limits.HandshakeTimeout.String": q(c.Limits.HandshakeTimeout.String()),
		"q .Limits.StanzaTimeout.String":    q(c.Limits.StanzaTimeout.String()),
		".Limits.GCPercent":                 d(c.Limits.GCPercent),
		"q .Limits.Memory.String":           q(c.Limits.Memory.String()),
		"q .Log.Level":                      q(c.Log.Level),
		"q .Cluster.Name":                   q(c.Cluster.Name),
		"q .Cluster.Listen":                 q(c.Cluster.Listen),
		"q .Cluster.Advertise":              q(c.Cluster.Advertise),
		"list .Cluster.Peers":               tomlList(c.Cluster.Peers),
		".Cluster.Replicas":                 d(c.Cluster.Replicas),
		"q .Cluster.SessionTTL.String":      q(c.Cluster.SessionTTL.String()),
		".Cluster.MaxClients":               d(c.Cluster.MaxClients),
		"q .Cluster.ClientAddress":          q(c.Cluster.ClientAddress),
		".Cluster.Leaf":                     b(c.Cluster.Leaf),
		"q .Cluster.LeafListen":             q(c.Cluster.LeafListen),
	}
}

// render replaces each {{name}} in text with vals[name]. A name without a
// value, or a value no name uses, is an error: a setting added to one and
// not to the other.
func render(text string, vals map[string]string) (string, error) {
	var b strings.Builder
	used := make(map[string]bool, len(vals))
	for {
		i := strings.Index(text, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(text[i:], "}}")
		if j < 0 {
			return "", fmt.Errorf("unclosed {{ in the file text")
		}
		name := text[i+2 : i+j]
		v, ok := vals[name]
		if !ok {
			return "", fmt.Errorf("no value for {{%s}}", name)
		}
		used[name] = true
		b.WriteString(text[:i])
		b.WriteString(v)
		text = text[i+j+2:]
	}
	b.WriteString(text)
	for name := range vals {
		if !used[name] {
			return "", fmt.Errorf("{{%s}} is not in the file text", name)
		}
	}
	return b.String(), nil
}

// tomlList writes a TOML array of strings.
func tomlList(list []string) string {
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = tomlString(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// tomlTable writes the key = value lines of a table of strings, sorted by
// key, each ending in a newline.
func tomlTable(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(tomlString(k) + " = " + tomlString(m[k]) + "\n")
	}
	return b.String()
}
