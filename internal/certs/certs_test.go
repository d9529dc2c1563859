package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// generate writes a self-signed pair for domain under a new temp dir and
// returns the paths.
func generate(t *testing.T, domain string) (certPath, keyPath string) {
	t.Helper()
	dir := t.TempDir()
	certPath = filepath.Join(dir, "tls", "cert.pem")
	keyPath = filepath.Join(dir, "tls", "key.pem")
	if err := GenerateSelfSigned(domain, certPath, keyPath); err != nil {
		t.Fatalf("GenerateSelfSigned(%q): %v", domain, err)
	}
	return certPath, keyPath
}

func TestGenerateSelfSigned(t *testing.T) {
	for _, tc := range []struct {
		domain string
		dns    []string
		ips    []string
	}{
		{"example.org", []string{"example.org", "*.example.org"}, nil},
		{"pi", []string{"pi", "*.pi"}, nil},
		{"192.168.1.5", nil, []string{"192.168.1.5"}},
		{"fd00::1", nil, []string{"fd00::1"}},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			certPath, keyPath := generate(t, tc.domain)
			if runtime.GOOS != "windows" {
				for path, want := range map[string]os.FileMode{
					filepath.Dir(certPath): 0o700 | os.ModeDir,
					keyPath:                0o600,
					certPath:               0o644,
				} {
					fi, err := os.Stat(path)
					if err != nil {
						t.Fatal(err)
					}
					if got := fi.Mode(); got != want {
						t.Errorf("mode of %s = %v, want %v", path, got, want)
					}
				}
			}

			keyPEM, err := os.ReadFile(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			block, rest := pem.Decode(keyPEM)
			if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
				t.Fatalf("key file is not one PEM PRIVATE KEY block: %q", keyPEM)
			}
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatalf("key is not PKCS#8: %v", err)
			}
			ec, ok := key.(*ecdsa.PrivateKey)
			if !ok || ec.Curve != elliptic.P256() {
				t.Fatalf("key is %T, want ECDSA P-256", key)
			}

			s, err := Load(certPath, keyPath)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			leaf := s.Leaf()
			if !slices.Equal(leaf.DNSNames, tc.dns) {
				t.Errorf("DNSNames = %q, want %q", leaf.DNSNames, tc.dns)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tc.ips) {
				t.Errorf("IPAddresses = %q, want %q", ips, tc.ips)
			}
			if got, want := leaf.Subject.CommonName, tc.domain; got != want {
				t.Errorf("CommonName = %q, want %q", got, want)
			}
			if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&ec.PublicKey) {
				t.Errorf("certificate public key does not match the key file")
			}
			now := time.Now()
			if leaf.NotBefore.After(now) {
				t.Errorf("NotBefore %v is in the future", leaf.NotBefore)
			}
			if min := now.AddDate(9, 11, 0); leaf.NotAfter.Before(min) {
				t.Errorf("NotAfter %v is before %v (want about 10 years)", leaf.NotAfter, min)
			}
			if leaf.SerialNumber.Sign() <= 0 {
				t.Errorf("serial %v is not positive", leaf.SerialNumber)
			}
			if leaf.IsCA {
				t.Errorf("certificate is a CA")
			}
			if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
				t.Errorf("certificate is not self-signed: %v", err)
			}
		})
	}
}

func TestGenerateSerialsDiffer(t *testing.T) {
	c1, k1 := generate(t, "example.org")
	c2, k2 := generate(t, "example.org")
	s1, err := Load(c1, k1)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Load(c2, k2)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Leaf().SerialNumber.Cmp(s2.Leaf().SerialNumber) == 0 {
		t.Errorf("two certificates share serial %v", s1.Leaf().SerialNumber)
	}
}

func TestGenerateEmptyDomain(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateSelfSigned("", filepath.Join(dir, "c"), filepath.Join(dir, "k")); err == nil {
		t.Error("GenerateSelfSigned with empty domain succeeded")
	}
}

// handshake runs a TLS handshake over loopback TCP between a server using
// cfg and a client trusting root, and returns the certificate the client
// was shown. (net.Pipe cannot be used: a TLS 1.3 server writes session
// tickets that nobody reads, so both ends would block.)
func handshake(t *testing.T, cfg *tls.Config, root *x509.Certificate, serverName string, maxVersion uint16) (*x509.Certificate, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		srvErr <- tls.Server(c, cfg).Handshake()
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	roots := x509.NewCertPool()
	roots.AddCert(root)
	cli := tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: serverName, MaxVersion: maxVersion})
	err = cli.Handshake()
	conn.Close() // unblocks the server if the client gave up first
	if sErr := <-srvErr; err == nil && sErr != nil {
		err = sErr
	}
	if err != nil {
		return nil, err
	}
	return cli.ConnectionState().PeerCertificates[0], nil
}

func TestHandshake(t *testing.T) {
	for _, tc := range []struct {
		domain, serverName string
	}{
		{"example.org", "example.org"},
		{"example.org", "conference.example.org"},
		{"127.0.0.1", "127.0.0.1"},
	} {
		t.Run(tc.serverName, func(t *testing.T) {
			certPath, keyPath := generate(t, tc.domain)
			s, err := Load(certPath, keyPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				got, err := handshake(t, s.TLSConfig(), s.Leaf(), tc.serverName, v)
				if err != nil {
					t.Fatalf("handshake (max version %x): %v", v, err)
				}
				if !got.Equal(s.Leaf()) {
					t.Errorf("client saw a certificate other than Leaf()")
				}
			}
		})
	}
}

func TestHandshakeRefused(t *testing.T) {
	certPath, keyPath := generate(t, "example.org")
	s, err := Load(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, s.TLSConfig(), s.Leaf(), "example.org", tls.VersionTLS11); err == nil {
		t.Error("TLS 1.1 handshake succeeded, want refused")
	}
	if _, err := handshake(t, s.TLSConfig(), s.Leaf(), "other.org", 0); err == nil {
		t.Error("handshake for other.org succeeded, want a name mismatch")
	}
}

func TestTLSConfig(t *testing.T) {
	certPath, keyPath := generate(t, "example.org")
	s, err := Load(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.TLSConfig(), s.TLSConfig()
	if a == b {
		t.Fatal("TLSConfig returned a shared *tls.Config")
	}
	if got, want := a.MinVersion, uint16(tls.VersionTLS12); got != want {
		t.Errorf("MinVersion = %x, want %x", got, want)
	}
	if a.NextProtos != nil || a.SessionTicketsDisabled || a.Certificates != nil {
		t.Errorf("TLSConfig = %+v, want only MinVersion and GetCertificate set", a)
	}
	a.NextProtos = []string{"xmpp-client"}
	if b.NextProtos != nil {
		t.Error("setting NextProtos on one config changed another")
	}
}

func TestReload(t *testing.T) {
	certPath, keyPath := generate(t, "example.org")
	s, err := Load(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.TLSConfig() // taken before the reload, as a listener would
	old := s.Leaf()

	if err := GenerateSelfSigned("example.org", certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	if got := s.Leaf(); !got.Equal(old) {
		t.Fatal("Leaf changed before Reload")
	}
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	leaf := s.Leaf()
	if leaf.Equal(old) {
		t.Fatal("Reload kept the old certificate")
	}
	got, err := handshake(t, cfg, leaf, "example.org", 0)
	if err != nil {
		t.Fatalf("handshake after Reload: %v", err)
	}
	if !got.Equal(leaf) {
		t.Error("server presented the old certificate after Reload")
	}
}

func TestReloadKeepsOldOnError(t *testing.T) {
	certPath, keyPath := generate(t, "example.org")
	s, err := Load(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	old := s.Leaf()
	_, otherKey := generate(t, "example.org")

	for _, tc := range []struct {
		name string
		file string // overwritten with content
		from string // file to copy content from, or "" for garbage
		want string // the error names this path
	}{
		{"garbage certificate", certPath, "", certPath},
		{"key of another pair", keyPath, otherKey, keyPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(tc.file, good, 0o600)
			content := []byte("not a pem file\n")
			if tc.from != "" {
				if content, err = os.ReadFile(tc.from); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(tc.file, content, 0o600); err != nil {
				t.Fatal(err)
			}
			err = s.Reload()
			if err == nil {
				t.Fatal("Reload succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Reload error %q does not name %s", err, tc.want)
			}
			if !s.Leaf().Equal(old) {
				t.Error("failed Reload replaced the certificate")
			}
			if got, err := handshake(t, s.TLSConfig(), old, "example.org", 0); err != nil || !got.Equal(old) {
				t.Errorf("after failed Reload, handshake = %v, want the old certificate", err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	certPath, keyPath := generate(t, "example.org")
	_, otherKey := generate(t, "example.org")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	garbage := write("garbage.pem", "hello\n")
	badDER := write("bad-der.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("nope")})))
	missing := filepath.Join(dir, "missing.pem")

	for _, tc := range []struct {
		name       string
		cert, key  string
		wantPath   string
		wantReason string
	}{
		{"missing certificate", missing, keyPath, missing, "no such file"},
		{"missing key", certPath, missing, missing, "no such file"},
		{"garbage certificate", garbage, keyPath, garbage, "no PEM certificate found"},
		{"bad certificate DER", badDER, keyPath, badDER, "certificate 1"},
		{"garbage key", certPath, garbage, garbage, "key"},
		{"swapped", keyPath, certPath, keyPath, "swapped"},
		{"key of another pair", certPath, otherKey, otherKey, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(tc.cert, tc.key)
			if err == nil {
				t.Fatalf("Load(%s, %s) = %v, want error", tc.cert, tc.key, s)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantPath) || !strings.Contains(msg, tc.wantReason) {
				t.Errorf("Load error %q, want it to name %s and say %q", msg, tc.wantPath, tc.wantReason)
			}
		})
	}

	// A combined file (key and certificate together) works for both.
	both := write("both.pem", read(keyPath)+read(certPath))
	if _, err := Load(both, both); err != nil {
		t.Errorf("Load of a combined file: %v", err)
	}
}
