package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SecretFile is the node's secret inside the data folder: 32 random bytes
// that key what must look the same across restarts without being
// guessable (SASL's fake salts for unknown users; later dialback keys).
const SecretFile = "keys/server.secret"

// LoadOrCreateSecret reads the node secret in dir, creating it (0600) when
// missing.
func LoadOrCreateSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, SecretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("%s: too short (%d bytes); delete it to make a new one", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	b = make([]byte, 32)
	_, _ = rand.Read(b)
	if err := WriteSecret(dir, b); err != nil {
		return nil, err
	}
	return b, nil
}

// WriteSecret writes secret as the server's secret in the data folder dir,
// replacing any (a node joining a cluster takes the cluster's).
func WriteSecret(dir string, secret []byte) error {
	path := filepath.Join(dir, SecretFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create keys folder: %w", err)
	}
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	return nil
}
