package sasl

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
)

func TestPlain(t *testing.T) {
	cert, leaf := ecdsaCert(t)
	ss, _ := tlsPair(t, tls.VersionTLS13, cert)
	accts := newAccounts(t, "alice", "correct horse", "bob", "I\u00ADX")
	tests := []struct {
		name     string
		msg      string
		wantUser string
		wantCond string
	}{
		{"ok", "\x00alice\x00correct horse", "alice", ""},
		{"ok authzid", "alice@example.org\x00alice\x00correct horse", "alice", ""},
		{"saslprep password", "\x00bob\x00IX", "bob", ""},
		{"saslprep password as stored", "\x00bob\x00I\u00ADX", "bob", ""},
		{"bad password", "\x00alice\x00correct horse!", "", NotAuthorized},
		{"unknown user", "\x00mallory\x00correct horse", "", NotAuthorized},
		{"authzid mismatch", "bob@example.org\x00alice\x00correct horse", "", InvalidAuthzID},
		{"authzid not a jid", "alice\x00alice\x00correct horse", "", InvalidAuthzID},
		{"no separators", "alice correct horse", "", MalformedRequest},
		{"one separator", "alice\x00correct horse", "", MalformedRequest},
		{"three separators", "\x00alice\x00correct\x00horse", "", MalformedRequest},
		{"empty authcid", "\x00\x00correct horse", "", MalformedRequest},
		{"empty password", "\x00alice\x00", "", MalformedRequest},
		{"invalid utf8", "\x00alice\x00\xff\xfe", "", MalformedRequest},
		{"long password", "\x00alice\x00" + strings.Repeat("p", 256), "", MalformedRequest},
		{"long authcid", "\x00" + strings.Repeat("a", 256) + "\x00pass", "", MalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(accts)
			n, err := s.Start(context.Background(), Plain, ss, leaf)
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := n.Step(context.Background(), []byte(tt.msg))
			if got, want := condition(t, err), tt.wantCond; got != want {
				t.Fatalf("condition = %q (%v), want %q", got, err, want)
			}
			if !done || len(out) != 0 {
				t.Errorf("Step = %q, done=%v; want no data, done", out, done)
			}
			if got, want := n.Username(), tt.wantUser; got != want {
				t.Errorf("Username() = %q, want %q", got, want)
			}
		})
	}
}

func TestPlainNotOffered(t *testing.T) {
	cert, leaf := ecdsaCert(t)
	ss, _ := tlsPair(t, tls.VersionTLS13, cert)
	for _, tt := range []struct {
		name  string
		allow bool
		cs    *tls.ConnectionState
	}{
		{"no tls", true, nil},
		{"tls handshake not complete", true, &tls.ConnectionState{}},
		{"not allowed", false, ss},
	} {
		s := &Server{AllowPlain: tt.allow}
		for _, m := range s.Mechanisms(tt.cs, leaf) {
			if m == Plain {
				t.Errorf("%s: PLAIN offered", tt.name)
			}
		}
		if _, err := s.Start(context.Background(), Plain, tt.cs, leaf); condition(t, err) != InvalidMechanism {
			t.Errorf("%s: Start(PLAIN) = %v, want invalid-mechanism", tt.name, err)
		}
	}
}

func TestPlainNoInitialResponse(t *testing.T) {
	cert, leaf := ecdsaCert(t)
	ss, _ := tlsPair(t, tls.VersionTLS12, cert)
	s := newTestServer(newAccounts(t, "alice", "pw"))
	n, err := s.Start(context.Background(), Plain, ss, leaf)
	if err != nil {
		t.Fatal(err)
	}
	if out, done, err := n.Step(context.Background(), nil); err != nil || done || len(out) != 0 {
		t.Fatalf("Step(empty) = %q, %v, %v; want empty challenge", out, done, err)
	}
	if _, done, err := n.Step(context.Background(), []byte("\x00alice\x00pw")); err != nil || !done {
		t.Fatalf("Step = %v, %v", done, err)
	}
	if got, want := n.Username(), "alice"; got != want {
		t.Errorf("Username() = %q, want %q", got, want)
	}
	if _, _, err := n.Step(context.Background(), []byte("\x00alice\x00pw")); condition(t, err) != MalformedRequest {
		t.Errorf("Step after success = %v, want malformed-request", err)
	}
}

func TestPlainDeferredFailure(t *testing.T) {
	cert, leaf := ecdsaCert(t)
	ss, _ := tlsPair(t, tls.VersionTLS13, cert)
	accts := newAccounts(t, "alice", "pw")
	s := &Server{AllowPlain: true, Lookup: func(ctx context.Context, u string) (Credentials, error) {
		c, err := accts.lookup(ctx, u)
		if err != nil {
			return c, err
		}
		return c, &Failure{Condition: CredentialsExpired}
	}}
	for _, tt := range []struct{ msg, want string }{
		{"\x00alice\x00pw", CredentialsExpired},
		{"\x00alice\x00nope", NotAuthorized},
	} {
		n, err := s.Start(context.Background(), Plain, ss, leaf)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := n.Step(context.Background(), []byte(tt.msg)); condition(t, err) != tt.want {
			t.Errorf("Step(%q) = %v, want %s", tt.msg, err, tt.want)
		}
	}
}

func TestParsePlain(t *testing.T) {
	for _, tt := range []struct {
		in      string
		z, c, p string
		ok      bool
	}{
		{"\x00u\x00p", "", "u", "p", true},
		{"a@b\x00u\x00p", "a@b", "u", "p", true},
		{"\x00u\x00p\x00", "", "", "", false},
		{"", "", "", "", false},
		{"\x00\x00", "", "", "", false},
	} {
		z, c, p, ok := parsePlain([]byte(tt.in))
		if z != tt.z || c != tt.c || p != tt.p || ok != tt.ok {
			t.Errorf("parsePlain(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", tt.in, z, c, p, ok, tt.z, tt.c, tt.p, tt.ok)
		}
	}
}
