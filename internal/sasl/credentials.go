package sasl

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/xdg-go/scram"
	"github.com/xdg-go/stringprep"
	"golang.org/x/text/secure/precis"
)

// saltLen is the length of the random salts made by NewCredentials.
const saltLen = 16

// ScramKeys are the salted SCRAM keys of one hash function (RFC 5802 §3).
type ScramKeys struct {
	Salt      []byte
	Iters     int
	StoredKey []byte
	ServerKey []byte
}

// usable reports whether k can authenticate anyone.
func (k ScramKeys) usable() bool {
	return k.Iters > 0 && len(k.Salt) > 0 && len(k.StoredKey) > 0 && len(k.ServerKey) > 0
}

func (k ScramKeys) stored() scram.StoredCredentials {
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(k.Salt), Iters: k.Iters},
		StoredKey:  k.StoredKey,
		ServerKey:  k.ServerKey,
	}
}

// Credentials are what storage keeps for an account: SCRAM keys for both
// hash functions, never the password.
type Credentials struct {
	SHA1   ScramKeys
	SHA256 ScramKeys
}

// NewCredentials derives the credentials for password with fresh random
// salts and iters PBKDF2 iterations (DefaultIters when 0). The password is
// prepared with SASLprep (RFC 4013), as SCRAM clients do; a password SASLprep
// refuses (for example one with emoji, unassigned in Unicode 3.2) is prepared
// with the PRECIS OpaqueString profile (RFC 8265) instead.
func NewCredentials(password string, iters int) (Credentials, error) {
	if iters == 0 {
		iters = DefaultIters
	}
	if iters < 0 {
		return Credentials{}, fmt.Errorf("new credentials: invalid iteration count %d", iters)
	}
	if password == "" {
		return Credentials{}, errors.New("new credentials: empty password")
	}
	p, err := preparePassword(password)
	if err != nil {
		return Credentials{}, fmt.Errorf("new credentials: %w", err)
	}
	salts := make([]byte, 2*saltLen)
	if _, err := rand.Read(salts); err != nil {
		return Credentials{}, fmt.Errorf("new credentials: salt: %w", err)
	}
	var c Credentials
	if c.SHA1, err = deriveKeys(scram.SHA1, p, salts[:saltLen:saltLen], iters); err != nil {
		return Credentials{}, fmt.Errorf("new credentials: %w", err)
	}
	if c.SHA256, err = deriveKeys(scram.SHA256, p, salts[saltLen:], iters); err != nil {
		return Credentials{}, fmt.Errorf("new credentials: %w", err)
	}
	return c, nil
}

// deriveKeys computes the SCRAM keys of an already prepared password.
func deriveKeys(h scram.HashGeneratorFcn, prepared string, salt []byte, iters int) (ScramKeys, error) {
	cl, err := h.NewClientUnprepped("", prepared, "")
	if err != nil {
		return ScramKeys{}, fmt.Errorf("derive keys: %w", err)
	}
	sc, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iters})
	if err != nil {
		return ScramKeys{}, fmt.Errorf("derive keys: %w", err)
	}
	return ScramKeys{Salt: salt, Iters: iters, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

// VerifyPlain reports whether password is the one c was made from, by
// recomputing the SCRAM-SHA-256 keys (SCRAM-SHA-1 if there are none) from
// the stored salt and comparing them in constant time.
func (c Credentials) VerifyPlain(password string) bool {
	keys, h := c.SHA256, scram.SHA256
	if !keys.usable() {
		keys, h = c.SHA1, scram.SHA1
	}
	if !keys.usable() || password == "" {
		return false
	}
	p, err := preparePassword(password)
	if err != nil {
		return false
	}
	got, err := deriveKeys(h, p, keys.Salt, keys.Iters)
	if err != nil {
		return false
	}
	a := subtle.ConstantTimeCompare(got.StoredKey, keys.StoredKey)
	b := subtle.ConstantTimeCompare(got.ServerKey, keys.ServerKey)
	return a&b == 1
}

// preparePassword applies SASLprep, falling back to PRECIS OpaqueString for
// passwords SASLprep refuses. The error never contains the password.
func preparePassword(password string) (string, error) {
	p, err := stringprep.SASLprep.Prepare(password)
	if err != nil {
		p, err = precis.OpaqueString.String(password)
	}
	if err != nil || p == "" {
		return "", errors.New("password contains characters that are not allowed")
	}
	return p, nil
}
