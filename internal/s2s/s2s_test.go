package s2s

import (
	"context"
	"net"
	"testing"
)

func TestDialbackKey(t *testing.T) {
	secret := []byte("s3cr3t")
	k := dialbackKey(secret, "b.test", "a.test", "id1")
	if len(k) != 64 {
		t.Fatalf("key %q is not hex SHA-256", k)
	}
	tests := []struct {
		name                     string
		receiving, orig, id, key string
		want                     bool
	}{
		{"genuine", "b.test", "a.test", "id1", k, true},
		{"other stream", "b.test", "a.test", "id2", k, false},
		{"other receiver", "c.test", "a.test", "id1", k, false},
		{"swapped", "a.test", "b.test", "id1", k, false},
		{"garbage", "b.test", "a.test", "id1", "00", false},
	}
	for _, tc := range tests {
		if got := checkDialbackKey(secret, tc.receiving, tc.orig, tc.id, tc.key); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if checkDialbackKey([]byte("other"), "b.test", "a.test", "id1", k) {
		t.Error("key accepted with another secret")
	}
}

func TestResolveStaticRoute(t *testing.T) {
	s := New(Config{Routes: map[string]string{"lan.test": "192.0.2.1:5269"},
		Resolver: &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
			t.Fatal("DNS asked for a domain with a static route")
			return nil, nil
		}}})
	got, err := s.resolve(context.Background(), "lan.test")
	if err != nil || len(got) != 1 || got[0].addr != "192.0.2.1:5269" || got[0].directTLS {
		t.Fatalf("got %v, %v", got, err)
	}
}
