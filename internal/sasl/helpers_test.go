package sasl

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

// testIters keeps PBKDF2 cheap in tests; xdg-go clients are told to accept it.
const testIters = 64

// selfSigned makes a self-signed leaf certificate for key.
func selfSigned(t testing.TB, key crypto.Signer) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example.org"},
		DNSNames:     []string{"example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

func ecdsaCert(t testing.TB) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return selfSigned(t, key)
}

func ed25519Cert(t testing.TB) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return selfSigned(t, key)
}

// tlsPair runs a real TLS handshake of the given version over net.Pipe and
// returns the server's and the client's view of the connection.
func tlsPair(t testing.TB, version uint16, cert tls.Certificate) (server, client *tls.ConnectionState) {
	t.Helper()
	c1, c2 := net.Pipe()
	srv := tls.Server(c1, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   version,
		MaxVersion:   version,
	})
	cli := tls.Client(c2, &tls.Config{
		InsecureSkipVerify: true,
		MinVersion:         version,
		MaxVersion:         version,
	})
	// Close the pipes, not the TLS conns: a close_notify nobody reads
	// would block for tls.Conn's 5 s write timeout.
	t.Cleanup(func() {
		_ = c1.Close()
		_ = c2.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.HandshakeContext(ctx) }()
	if err := cli.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	ss, cs := srv.ConnectionState(), cli.ConnectionState()
	if ss.Version != version {
		t.Fatalf("negotiated version %x, want %x", ss.Version, version)
	}
	return &ss, &cs
}

// accounts is an in-memory account store for tests.
type accounts map[string]Credentials

func newAccounts(t testing.TB, userPass ...string) accounts {
	t.Helper()
	a := accounts{}
	for i := 0; i+1 < len(userPass); i += 2 {
		c, err := NewCredentials(userPass[i+1], testIters)
		if err != nil {
			t.Fatalf("NewCredentials(%q): %v", userPass[i+1], err)
		}
		a[userPass[i]] = c
	}
	return a
}

func (a accounts) lookup(_ context.Context, user string) (Credentials, error) {
	c, ok := a[user]
	if !ok {
		return Credentials{}, fmt.Errorf("account %q: %w", user, ErrUnknownUser)
	}
	return c, nil
}

func newTestServer(a accounts) *Server {
	return &Server{Lookup: a.lookup, AllowPlain: true, FakeIters: testIters}
}

// newClient returns an xdg-go SCRAM client for mech's hash.
func newClient(t testing.TB, mech, user, pass, authzID string) *scram.Client {
	t.Helper()
	h := scram.SHA256
	if mech == ScramSHA1 || mech == ScramSHA1Plus {
		h = scram.SHA1
	}
	c, err := h.NewClient(user, pass, authzID)
	if err != nil {
		t.Fatalf("new scram client: %v", err)
	}
	return c.WithMinIterations(testIters)
}

// converse runs a full SCRAM exchange between cc and n. It returns the
// authenticated username or the server's failure; the client must accept
// the server's final message on success.
func converse(t testing.TB, n *Negotiation, cc *scram.ClientConversation) (string, error) {
	t.Helper()
	ctx := context.Background()
	msg, err := cc.Step("")
	if err != nil {
		t.Fatalf("client first: %v", err)
	}
	for range 4 {
		out, done, err := n.Step(ctx, []byte(msg))
		if err != nil {
			if !done {
				t.Errorf("Step error with done=false")
			}
			var f *Failure
			if !errors.As(err, &f) {
				t.Fatalf("Step error %T %v is not a *Failure", err, err)
			}
			return "", err
		}
		if done {
			if _, err := cc.Step(string(out)); err != nil {
				t.Fatalf("client rejects server-final %q: %v", out, err)
			}
			if !cc.Valid() {
				t.Fatalf("client did not validate the server")
			}
			return n.Username(), nil
		}
		msg, err = cc.Step(string(out))
		if err != nil {
			t.Fatalf("client step on %q: %v", out, err)
		}
	}
	t.Fatalf("conversation did not finish")
	return "", nil
}

// condition returns the failure condition of err ("" for nil).
func condition(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %T %v is not a *Failure", err, err)
	}
	return f.Condition
}
