package sasl

import (
	"bytes"
	"context"
	"unicode/utf8"
)

// maxPlainField is the longest authzid, authcid or passwd RFC 4616 §2 allows.
const maxPlainField = 255

// stepPlain checks a PLAIN message (RFC 4616). A nil error means the
// password matched.
func (n *Negotiation) stepPlain(ctx context.Context, in []byte) error {
	authzID, authcID, passwd, ok := parsePlain(in)
	if !ok {
		return fail(MalformedRequest, "")
	}
	creds, name, err := n.lookup(ctx, authcID, authzID)
	if err != nil {
		return err
	}
	if n.fake {
		// Spend the work a real account would cost, so that timing does
		// not tell unknown users apart.
		fake := Credentials{SHA256: n.s.fakeKeys("SHA-256", name, 32)}
		fake.VerifyPlain(passwd)
		return fail(NotAuthorized, "")
	}
	if !creds.VerifyPlain(passwd) {
		return fail(NotAuthorized, "")
	}
	return nil
}

// parsePlain splits message = [authzid] NUL authcid NUL passwd, each field
// UTF-8 of at most 255 octets, authcid and passwd not empty.
func parsePlain(b []byte) (authzID, authcID, passwd string, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", "", "", false
	}
	rest := b[i+1:]
	j := bytes.IndexByte(rest, 0)
	if j < 0 {
		return "", "", "", false
	}
	z, c, p := b[:i], rest[:j], rest[j+1:]
	if len(c) == 0 || len(p) == 0 || len(z) > maxPlainField || len(c) > maxPlainField || len(p) > maxPlainField {
		return "", "", "", false
	}
	if bytes.IndexByte(p, 0) >= 0 || !utf8.Valid(b) {
		return "", "", "", false
	}
	return string(z), string(c), string(p), true
}
