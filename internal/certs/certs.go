// Package certs holds the server's TLS certificate: it generates a
// self-signed one for a fresh data folder, loads a certificate and key from
// PEM files, reloads them while running, and hands out the server
// tls.Config (TLS 1.2 or later, as RFC 6120 §13.8 and RFC 7590 ask).
//
// The current leaf certificate is exposed for SASL channel binding of type
// tls-server-end-point (RFC 5929 §4), which hashes the server certificate.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// validity is how long a generated self-signed certificate is valid.
const validity = 10 * 365 * 24 * time.Hour

// GenerateSelfSigned creates an ECDSA P-256 key and a self-signed
// certificate for domain, valid for ten years, and writes them as PEM to
// certPath (mode 0644) and keyPath (PKCS#8, mode 0600). The certificate
// names domain and *.domain (so that subdomains such as a MUC or upload
// service are covered), or holds an IP address if domain is one. Missing
// parent directories are created with mode 0700. Existing files are
// replaced; each file is written whole or not at all.
func GenerateSelfSigned(domain, certPath, keyPath string) error {
	if domain == "" {
		return errors.New("generate certificate: empty domain")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return fmt.Errorf("generate certificate: %w", err)
	}
	notBefore := time.Now().Add(-time.Hour).UTC() // tolerate clocks slightly behind
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(domain); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{domain, "*." + domain}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("generate certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("generate certificate: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a reload between the two writes then sees a new key
	// with the old certificate, which fails and keeps the old pair.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("generate certificate: write key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("generate certificate: write certificate: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file next to path, syncs it
// and renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return nil
}

// Store holds the server's current certificate and key. It is safe for
// concurrent use; Reload swaps the certificate for new connections while
// existing ones keep theirs.
type Store struct {
	certPath, keyPath string
	cur               atomic.Pointer[tls.Certificate] // Leaf always set
}

// Load reads a PEM certificate chain (leaf first) from certPath and its
// private key from keyPath.
func Load(certPath, keyPath string) (*Store, error) {
	s := &Store{certPath: certPath, keyPath: keyPath}
	cert, err := loadPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	s.cur.Store(cert)
	return s, nil
}

// Reload re-reads the certificate and key files. On error the store keeps
// the certificate it had.
func (s *Store) Reload() error {
	cert, err := loadPair(s.certPath, s.keyPath)
	if err != nil {
		return err
	}
	s.cur.Store(cert)
	return nil
}

// loadPair reads and checks the files, naming the file at fault in errors.
func loadPair(certPath, keyPath string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	if err := checkCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("load certificate %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load certificate key: %w", err)
	}
	// The certificate file is known good, so what fails here is the key
	// file or the pair not matching.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load certificate key %s (for %s): %w", keyPath, certPath, err)
	}
	if cert.Leaf == nil { // set by X509KeyPair unless GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("load certificate %s: %w", certPath, err)
		}
	}
	return &cert, nil
}

// checkCertPEM reports whether data holds at least one PEM CERTIFICATE
// block and whether each such block parses.
func checkCertPEM(data []byte) error {
	n, keys := 0, 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			if strings.HasSuffix(block.Type, "PRIVATE KEY") {
				keys++
			}
			continue
		}
		n++
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n, err)
		}
	}
	switch {
	case n == 0 && keys > 0:
		return errors.New("no PEM certificate found, only a private key (are the certificate and key files swapped?)")
	case n == 0:
		return errors.New("no PEM certificate found (want a -----BEGIN CERTIFICATE----- block)")
	}
	return nil
}

// GetCertificate returns the current certificate. It has the signature of
// tls.Config.GetCertificate, for callers that want to see which
// certificate a connection was given (e.g. for channel binding).
func (s *Store) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// TLSConfig returns a new server configuration that takes its certificate
// from the store, so it follows Reload. It requires TLS 1.2 or later.
// NextProtos is left empty for the caller to set.
func (s *Store) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.GetCertificate,
	}
}

// Leaf returns the current leaf certificate.
func (s *Store) Leaf() *x509.Certificate {
	return s.cur.Load().Leaf
}
