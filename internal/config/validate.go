package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// FieldError is one problem found by Validate: the setting (as written in
// the file, e.g. "c2s.port"), its value and what is wrong with it.
type FieldError struct {
	Field  string
	Value  any
	Reason string
}

func (e *FieldError) Error() string {
	switch v := e.Value.(type) {
	case string:
		if v == "" {
			return fmt.Sprintf("%s: %s", e.Field, e.Reason)
		}
		return fmt.Sprintf("%s: %q %s", e.Field, v, e.Reason)
	case Duration:
		return fmt.Sprintf("%s: %q %s", e.Field, v.String(), e.Reason)
	default:
		return fmt.Sprintf("%s: %v %s", e.Field, v, e.Reason)
	}
}

// Bounds enforced by Validate.
const (
	minScramIterations = 4096       // RFC 7677 §4: at least 4096
	maxScramIterations = 10_000_000 // beyond this a login takes minutes on a Pi
	minStanzaBytes     = 10000      // RFC 6120 §13.12: accept stanzas of at least 10000 bytes
	minPreAuthBytes    = 1024
	minDepth           = 8
	minAttrs           = 8
	minHandshake       = time.Second
	minMemory          = 16 << 20 // an idle server holds about 7MB; below this the GC would run all the time
)

// Validate reports every problem in c, joined with errors.Join. Each one is
// a *FieldError naming the setting and its value.
func (c *Config) Validate() error {
	var errs []error
	add := func(field string, value any, reason string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Reason: reason})
	}

	switch {
	case c.Domain == "":
		add("domain", c.Domain, `is not set (e.g. domain = "example.org")`)
	default:
		if reason := checkDomain(c.Domain); reason != "" {
			add("domain", c.Domain, reason)
		}
	}
	if c.Listen != "" {
		if _, err := netip.ParseAddr(c.Listen); err != nil {
			add("listen", c.Listen, `is not an IP address (use "" for all addresses; ports are set per service)`)
		}
	}
	switch c.Registration {
	case RegistrationInvite, RegistrationOpen, RegistrationClosed:
	default:
		add("registration", c.Registration, `is not one of "invite", "open", "closed"`)
	}

	ports := []struct {
		field    string
		port     int
		zeroOff  bool
		inactive bool
	}{
		{"c2s.port", c.C2S.Port, false, false},
		{"c2s.direct_tls_port", c.C2S.DirectTLSPort, true, c.C2S.DirectTLSPort == 0},
		{"s2s.port", c.S2S.Port, true, c.S2S.Port == 0},
		{"s2s.direct_tls_port", c.S2S.DirectTLSPort, true, c.S2S.DirectTLSPort == 0},
		{"https.port", c.HTTPS.Port, true, c.HTTPS.Port == 0},
	}
	for i, p := range ports {
		switch {
		case p.zeroOff && p.port == 0:
			continue
		case p.port < 1 || p.port > 65535:
			if p.zeroOff {
				add(p.field, p.port, "is not a port (1-65535, or 0 for off)")
			} else {
				add(p.field, p.port, "is not a port (1-65535)")
			}
			continue
		}
		for _, q := range ports[:i] {
			if !q.inactive && q.port == p.port {
				add(p.field, p.port, "is also used by "+q.field)
				break
			}
		}
	}
	switch c.Federation {
	case FederationOpen, FederationDenylist, FederationAllowlist, FederationPrivate:
	default:
		add("federation", c.Federation, `is not one of "open", "denylist", "allowlist", "private"`)
	}
	for i, d := range c.S2S.Allow {
		if reason := checkDomain(d); reason != "" {
			add(fmt.Sprintf("s2s.allow[%d]", i), d, reason)
		}
	}
	for i, d := range c.S2S.Deny {
		if reason := checkDomain(d); reason != "" {
			add(fmt.Sprintf("s2s.deny[%d]", i), d, reason)
		}
	}
	for d, addr := range c.S2S.Routes {
		if reason := checkDomain(d); reason != "" {
			add("s2s.routes", d, reason)
		}
		if !isHostPort(addr) {
			add("s2s.routes."+d, addr, `is not host:port (e.g. "192.168.1.20:5269")`)
		}
	}
	if c.S2S.StanzaBytes < minStanzaBytes {
		add("s2s.stanza_bytes", c.S2S.StanzaBytes, fmt.Sprintf("is below %d (RFC 6120 §13.12)", minStanzaBytes))
	}
	if c.S2S.IdleTimeout.Duration < time.Second {
		add("s2s.idle_timeout", c.S2S.IdleTimeout, "is shorter than 1s")
	}
	if n := c.C2S.ScramIterations; n < minScramIterations || n > maxScramIterations {
		add("c2s.scram_iterations", n, fmt.Sprintf("is out of range (%d-%d)", minScramIterations, maxScramIterations))
	}
	if n := c.C2S.MaxConnections; n < 1 {
		add("c2s.max_connections", n, "must be at least 1")
	}

	if c.TLS.Cert == "" {
		add("tls.cert", c.TLS.Cert, "is not set")
	}
	if c.TLS.Key == "" {
		add("tls.key", c.TLS.Key, "is not set")
	}
	if c.Storage.Database == "" {
		add("storage.database", c.Storage.Database, "is not set")
	}
	if n := c.Storage.OfflineMax; n < 0 {
		add("storage.offline_max", n, "must not be negative (0 keeps no offline messages)")
	}

	l := c.Limits
	if l.StanzaBytes < minStanzaBytes {
		add("limits.stanza_bytes", l.StanzaBytes, fmt.Sprintf("is below %d (RFC 6120 §13.12)", minStanzaBytes))
	}
	switch {
	case l.PreAuthStanzaBytes < minPreAuthBytes:
		add("limits.preauth_stanza_bytes", l.PreAuthStanzaBytes, fmt.Sprintf("is below %d", minPreAuthBytes))
	case l.PreAuthStanzaBytes > l.StanzaBytes:
		add("limits.preauth_stanza_bytes", l.PreAuthStanzaBytes, "is above limits.stanza_bytes")
	}
	if l.Depth < minDepth {
		add("limits.depth", l.Depth, fmt.Sprintf("is below %d", minDepth))
	}
	if l.Attrs < minAttrs {
		add("limits.attrs", l.Attrs, fmt.Sprintf("is below %d", minAttrs))
	}
	if l.StanzasPerSecond < 1 {
		add("limits.stanzas_per_second", l.StanzasPerSecond, "must be at least 1")
	}
	if l.GCPercent < 10 || l.GCPercent > 1000 {
		add("limits.gc_percent", l.GCPercent, "is out of range (10-1000)")
	}
	if l.HandshakeTimeout.Duration < minHandshake {
		add("limits.handshake_timeout", l.HandshakeTimeout, "is shorter than 1s")
	}
	if l.StanzaTimeout.Duration < minHandshake {
		add("limits.stanza_timeout", l.StanzaTimeout, "is shorter than 1s")
	}
	if l.Memory != 0 && l.Memory < minMemory {
		add("limits.memory", l.Memory.String(), `is below 16MB ("" = no limit)`)
	}

	if cl := c.Cluster; cl.Enabled() {
		if !validNodeName(cl.Name) {
			add("cluster.name", cl.Name, "must be 1-32 of a-z, 0-9, - and _")
		}
		if !isHostPort(cl.Listen) && !(cl.Leaf && cl.Listen == "") {
			add("cluster.listen", cl.Listen, `is not host:port (e.g. "10.0.0.1:7422")`)
		}
		if cl.LeafListen != "" {
			if !isHostPort(cl.LeafListen) {
				add("cluster.leaf_listen", cl.LeafListen, `is not host:port (e.g. "0.0.0.0:7423")`)
			} else if cl.Leaf {
				add("cluster.leaf_listen", cl.LeafListen, "is set on a leaf node: only full nodes accept leaf nodes")
			}
		}
		if cl.MaxClients < 0 {
			add("cluster.max_clients", cl.MaxClients, "is negative (0 = no limit)")
		}
		if cl.Advertise != "" {
			if !isHostPort(cl.Advertise) {
				add("cluster.advertise", cl.Advertise, `is not host:port (e.g. "203.0.113.5:7422")`)
			}
		}
		if len(cl.Peers) == 0 {
			add("cluster.peers", cl.Peers, "is empty: a cluster needs the other nodes' addresses")
		}
		for i, p := range cl.Peers {
			if !isHostPort(p) {
				add(fmt.Sprintf("cluster.peers[%d]", i), p, `is not host:port (e.g. "10.0.0.2:7422")`)
			} else if p == cl.Listen {
				add(fmt.Sprintf("cluster.peers[%d]", i), p, "is this node's own cluster.listen")
			}
		}
		if cl.Replicas < 1 || cl.Replicas > 5 {
			add("cluster.replicas", cl.Replicas, "is out of range (1-5)")
		}
		if cl.SessionTTL.Duration < time.Second {
			add("cluster.session_ttl", cl.SessionTTL, "is shorter than 1s")
		}
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", c.Log.Level, `is not one of "debug", "info", "warn", "error"`)
	}
	return errors.Join(errs...)
}

// validNodeName reports whether s is a usable cluster node name.
func validNodeName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

// checkDomain returns what is wrong with d as an XMPP domain, or "". An IP
// address is accepted as is; otherwise d must be a lower-case ASCII DNS
// host name (internationalized names in their xn-- form).
func checkDomain(d string) string {
	if _, err := netip.ParseAddr(d); err == nil {
		if strings.Contains(d, "%") {
			return "is an IP address with a zone, which cannot be a domain"
		}
		return ""
	}
	if len(d) > 253 {
		return "is longer than 253 characters"
	}
	if strings.ToLower(d) != d {
		return fmt.Sprintf("must be lower case (%q)", strings.ToLower(d))
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" {
			return "is not a DNS name (empty label; no leading, trailing or double dots)"
		}
		if len(label) > 63 {
			return "is not a DNS name (a label is longer than 63 characters)"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "is not a DNS name (a label starts or ends with '-')"
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-') {
				return "is not a DNS name (letters, digits, '-' and '.' only; write international names in xn-- form)"
			}
		}
	}
	return ""
}

// isHostPort reports whether s is host:port with a port.
func isHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	return err == nil && port != ""
}
