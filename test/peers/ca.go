//go:build integration

package peers

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a throwaway certificate authority for one test. Its certificate and
// every certificate it issues are ECDSA P-256, which OpenSSL (Prosody's
// LuaSec, ejabberd's fast_tls) and Go's crypto/tls all accept.
type CA struct {
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	certPath string
}

// NewCA creates a CA valid from an hour ago for a year and writes its
// certificate (PEM) into a temporary directory.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate CA key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "CASP3R test CA", Organization: []string{"casp3r tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	ca := &CA{cert: cert, key: key, certPath: filepath.Join(t.TempDir(), "ca.crt")}
	writePEM(t, ca.certPath, 0o644, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return ca
}

// CertPath is the CA certificate (PEM), to be trusted by a server under test.
func (ca *CA) CertPath() string { return ca.certPath }

// Issue writes a certificate for domain and *.domain signed by the CA, and
// its key, into dir as domain.crt and domain.key (PEM; the key in SEC 1
// form), and returns their paths. The certificate allows both TLS server
// and client use, as s2s needs.
func (ca *CA) Issue(t testing.TB, dir, domain string) (certPath, keyPath string) {
	t.Helper()
	return issue(t, dir, domain, ca.cert, ca.key)
}

// SelfSigned writes a self-signed certificate for domain and *.domain into
// dir, as Issue does.
func SelfSigned(t testing.TB, dir, domain string) (certPath, keyPath string) {
	t.Helper()
	return issue(t, dir, domain, nil, nil)
}

// issue creates the leaf certificate; a nil parent makes it self-signed.
func issue(t testing.TB, dir, domain string, parent *x509.Certificate, parentKey crypto.Signer) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key for %s: %v", domain, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: domain},
		DNSNames:     []string{domain, "*." + domain},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour), // ejabberd warns about certificates near expiry
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatalf("create certificate for %s: %v", domain, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key for %s: %v", domain, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create certificate directory: %v", err)
	}
	certPath := filepath.Join(dir, domain+".crt")
	keyPath := filepath.Join(dir, domain+".key")
	writePEM(t, certPath, 0o644, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	writePEM(t, keyPath, 0o600, &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return certPath, keyPath
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatalf("certificate serial: %v", err)
	}
	return n
}

func writePEM(t testing.TB, path string, mode os.FileMode, blocks ...*pem.Block) {
	t.Helper()
	var b []byte
	for _, blk := range blocks {
		b = append(b, pem.EncodeToMemory(blk)...)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
