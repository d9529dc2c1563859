//go:build integration

package peers

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Hosts is a private hosts file (hosts(5) format) shared by every peer of a
// test: it maps each XMPP domain to the 127.0.0.x address its server
// listens on. Peers resolve s2s destinations only through it.
//
// Add every domain before starting the peers: Prosody's resolver
// (libunbound) reads the file once, at start, and ejabberd sees it as it
// was at start (see StartEjabberd). Peer.ReloadDNS makes a running peer see
// domains added later.
type Hosts struct {
	t    testing.TB
	path string

	mu      sync.Mutex
	entries map[string]string // domain → address
}

// NewHosts creates an empty hosts file in a temporary directory.
func NewHosts(t testing.TB) *Hosts {
	t.Helper()
	h := &Hosts{t: t, path: filepath.Join(t.TempDir(), "hosts"), entries: map[string]string{}}
	h.write()
	return h
}

// Add maps domain to ip, which must be in 127.0.0.0/8, replacing any
// earlier mapping of domain.
func (h *Hosts) Add(domain, ip string) {
	h.t.Helper()
	if err := checkLoopback(ip); err != nil {
		h.t.Fatalf("hosts: %s: %v", domain, err)
	}
	if err := checkDomain(domain); err != nil {
		h.t.Fatalf("hosts: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entries[strings.ToLower(domain)] = ip
	h.write()
}

// Lookup returns the address domain is mapped to.
func (h *Hosts) Lookup(domain string) (ip string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ip, ok = h.entries[strings.ToLower(domain)]
	return ip, ok
}

// Path is the hosts file.
func (h *Hosts) Path() string { return h.path }

// write replaces the file atomically, so a reader never sees half of it.
func (h *Hosts) write() {
	h.t.Helper()
	names := make([]string, 0, len(h.entries))
	for d := range h.entries {
		names = append(names, d)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("# written by casp3r/test/peers\n")
	for _, d := range names {
		fmt.Fprintf(&b, "%s %s\n", h.entries[d], d)
	}
	tmp := h.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		h.t.Fatalf("write hosts file: %v", err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		h.t.Fatalf("write hosts file: %v", err)
	}
}

// checkLoopback accepts an IPv4 address in 127.0.0.0/8.
func checkLoopback(ip string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() || a.As4()[0] != 127 {
		return fmt.Errorf("address %q is not an IPv4 address in 127.0.0.0/8", ip)
	}
	return nil
}

// checkDomain accepts a lowercase-able DNS name made of letters, digits,
// hyphens and dots, so it can go into config files unquoted and unescaped.
func checkDomain(d string) error {
	if d == "" || len(d) > 253 || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return fmt.Errorf("domain %q is not a DNS name", d)
	}
	for _, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("domain %q is not a DNS name", d)
		}
	}
	return nil
}
