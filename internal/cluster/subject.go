package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"

	"github.com/nats-io/nats.go"
)

// tokenEncoding is lowercase base32 without padding: letters and digits
// only, so a token is safe in any NATS subject and KV key.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// TokenLen is the length of a [Token].
const TokenLen = 26

// Token returns the subject token for a name (an account's bare JID, already
// prepared by the caller so that equal JIDs give equal tokens): the first 128
// bits of its SHA-256 in lowercase base32, 26 characters. Fixed length keeps
// subjects short whatever the JID (up to 3071 bytes) and free of the
// characters NATS reserves ('.', '*', '>', whitespace).
func Token(name string) string {
	sum := sha256.Sum256([]byte(name))
	return tokenEncoding.EncodeToString(sum[:16])
}

// UserSubject is the core NATS subject on which stanzas for a bare JID travel
// between nodes.
func UserSubject(bareJID string) string { return "user." + Token(bareJID) }

// LogSubject is the subject of an account's log in the LOGS stream.
func LogSubject(account string) string { return "log." + Token(account) }

// Publish sends data on a core NATS subject (for example [UserSubject]) to
// every node subscribed to it. Delivery is at most once: nothing is stored,
// and a message published while no node subscribes is dropped, so the
// sender decides from the session bucket whether the user is online
// somewhere.
func (n *Node) Publish(ctx context.Context, subject string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	if err := n.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// Subscribe calls fn for every message published on subject (wildcards
// allowed) by any node, in order, on one goroutine per subscription. fn owns
// data. When Subscribe returns, this node's server knows the interest; other
// nodes learn it over the routes a moment later. Calling unsubscribe more than
// once is harmless.
func (n *Node) Subscribe(subject string, fn func(data []byte)) (unsubscribe func(), err error) {
	sub, err := n.nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	if err := n.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
