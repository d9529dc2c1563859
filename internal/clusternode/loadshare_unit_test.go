package clusternode

import (
	"log/slog"
	"testing"

	"casp3r/internal/config"
)

// TestClientAddress: where the heartbeat says clients reach a node, from
// [cluster] client_address or the route address and the bound ports.
func TestClientAddress(t *testing.T) {
	tests := []struct {
		name            string
		cfg             config.Cluster
		c2s, tls        int // bound ports; 0 = not listening
		wantC2S, wantTL string
	}{
		{"from listen", config.Cluster{Listen: "10.0.0.1:7422"}, 5222, 5223, "10.0.0.1:5222", "10.0.0.1:5223"},
		{"advertise first", config.Cluster{Listen: "0.0.0.0:7422", Advertise: "203.0.113.5:7422"}, 5222, 0, "203.0.113.5:5222", ""},
		{"ipv6 route", config.Cluster{Listen: "[2001:db8::1]:7422"}, 5222, 5223, "[2001:db8::1]:5222", "[2001:db8::1]:5223"},
		{"unspecified host", config.Cluster{Listen: "0.0.0.0:7422"}, 5222, 5223, "", ""},
		{"client_address host", config.Cluster{Listen: "10.0.0.1:7422", ClientAddress: "pi1.example.org"}, 5222, 5223,
			"pi1.example.org:5222", "pi1.example.org:5223"},
		{"client_address host:port", config.Cluster{Listen: "10.0.0.1:7422", ClientAddress: "198.51.100.9:15222"}, 5222, 5223,
			"198.51.100.9:15222", "198.51.100.9:5223"},
		{"client_address ipv6", config.Cluster{ClientAddress: "2001:db8::9"}, 5222, 0, "[2001:db8::9]:5222", ""},
		{"client_address bracketed ipv6", config.Cluster{ClientAddress: "[2001:db8::9]"}, 5222, 0, "[2001:db8::9]:5222", ""},
		{"not listening yet", config.Cluster{Listen: "10.0.0.1:7422"}, 0, 0, "", ""},
		{"leaf without client_address", config.Cluster{Leaf: true, Advertise: "10.0.0.8:7422"}, 5222, 5223, "", ""},
		{"leaf with client_address", config.Cluster{Leaf: true, ClientAddress: "leaf.example.org"}, 5222, 5223,
			"leaf.example.org:5222", "leaf.example.org:5223"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ca := newClientAddress(tc.cfg, slog.New(slog.DiscardHandler))
			c2s, tls := ca.addrs(func() (int, int) { return tc.c2s, tc.tls })
			if c2s != tc.wantC2S || tls != tc.wantTL {
				t.Errorf("addrs = %q, %q; want %q, %q", c2s, tls, tc.wantC2S, tc.wantTL)
			}
		})
	}
}

// TestLeastLoaded: the live node with room and the fewest sessions, ties
// by name; clients sent count until the node's next heartbeat.
func TestLeastLoaded(t *testing.T) {
	m := &monitor{peers: map[string]*peer{}}
	add := func(hb heartbeat, dead bool) { m.peers[hb.Name] = &peer{hb: hb, dead: dead} }
	add(heartbeat{Name: "b", Users: 3, MaxClients: 4, Client: "b:5222", ClientTLS: "b:5223"}, false)
	add(heartbeat{Name: "c", Users: 3, Client: "c:5222"}, false)                                     // no limit, no direct TLS
	add(heartbeat{Name: "d", Users: 0, Client: "d:5222", ClientTLS: "d:5223"}, true)                 // dead
	add(heartbeat{Name: "e", Users: 2, MaxClients: 2, Client: "e:5222", ClientTLS: "e:5223"}, false) // full
	add(heartbeat{Name: "f", Users: 0}, false)                                                       // not listening yet

	for i, want := range []string{
		"b:5222", // b and c have 3, b first by name
		"c:5222", // b has 3+1
		"c:5222", // b 4 of 4: full; c 4, no limit
	} {
		if got := m.leastLoaded(false); got != want {
			t.Errorf("STARTTLS client %d sent to %q, want %q", i+1, got, want)
		}
	}
	if got := m.leastLoaded(true); got != "" {
		t.Errorf("direct TLS client sent to %q, want nowhere (b full, c without direct TLS, e full, d dead)", got)
	}
	m.seen(heartbeat{Name: "b", Users: 3, MaxClients: 4, Client: "b:5222", ClientTLS: "b:5223"})
	if got, want := m.leastLoaded(true), "b:5223"; got != want {
		t.Errorf("after b's heartbeat (the client sent there never came), direct TLS client sent to %q, want %q", got, want)
	}
}
