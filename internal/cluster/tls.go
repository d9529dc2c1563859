package cluster

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// Route and leaf links are TLS 1.3 with certificates on both sides. Every
// node derives the same cluster CA key from the shared secret and signs a
// certificate of its own at start, for the name linkName; a peer is
// accepted when its certificate chains to that CA, whatever address it was
// dialed at or came from. The trust is
// the shared secret's, as with the passwords (which stay, inside TLS), but
// nothing on the wire can be read or replayed, and no file has to be copied
// between nodes.

// caName is the subject of the cluster CA (the same on every node).
var caName = pkix.Name{CommonName: "casp3r cluster CA", Organization: []string{"casp3r"}}

// linkName is the name every node's certificate carries and every dialing
// node expects: nodes are dialed by address and found by gossip, so what
// identifies a node of the cluster is its CA, not a host name.
const linkName = "node.casp3r.cluster"

// linkTLS returns the TLS configuration of this node's routes and leaf
// links, for both the dialing and the accepting side.
func linkTLS(secret, name string) (*tls.Config, error) {
	caKey := ed25519.NewKeyFromSeed(Derive([]byte(secret), "casp3r cluster ca v1"))
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               caName,
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"casp3r"}},
		DNSNames:     []string{linkName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		ServerName:   linkName, // kept by nats-server when set
		RootCAs:      roots,
		ClientCAs:    roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// Derive derives 32 bytes for purpose from a secret (HMAC-SHA256): each
// use of the shared secret (route and leaf passwords, the cluster CA, the
// log cipher) gets its own key, and none reveals another or the secret.
func Derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}
