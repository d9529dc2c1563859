package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Namespaces of dialback.
const (
	nsDialback     = "jabber:server:dialback"
	nsDialbackFeat = "urn:xmpp:features:dialback"
)

// dialbackKey is the key of XEP-0185: HMAC-SHA256 keyed with the SHA-256 of
// the node secret over "receiving originating streamID", hex encoded. Only
// this server checks its own keys, so it never needs to store them.
func dialbackKey(secret []byte, receiving, originating, streamID string) string {
	k := sha256.Sum256(secret)
	mac := hmac.New(sha256.New, []byte(hex.EncodeToString(k[:])))
	mac.Write([]byte(receiving + " " + originating + " " + streamID))
	return hex.EncodeToString(mac.Sum(nil))
}

// checkDialbackKey compares a key with the one we would have made.
func checkDialbackKey(secret []byte, receiving, originating, streamID, key string) bool {
	want := dialbackKey(secret, receiving, originating, streamID)
	return hmac.Equal([]byte(want), []byte(key))
}
