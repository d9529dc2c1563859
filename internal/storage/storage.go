// Package storage defines the durable state of an XMPP account and the
// sentinels shared by its implementations (see storage/sqlite).
//
// Every durable change to an account is an [Event] appended to that
// account's log: events are numbered 1..n and hash-linked, each carrying the
// SHA-256 hash of the previous one (see [HashEvent]). Views — the account's
// credentials and role, its roster (RFC 6121 §2), its offline messages
// (XEP-0160) and its vCard (XEP-0054) — are materialized from the log and
// can be rebuilt from it. The head of each
// log (last seq and hash) is signed with the account's Ed25519 key (see
// [HeadMessage]), so a replica can check what it holds without trusting the
// carrier.
//
// Server-wide state that belongs to no account (the federation allow and
// deny lists) has logs of its own, hash-linked the same way but not signed:
// see [ServerLogFederation].
package storage

import (
	"errors"
	"time"
)

// Sentinel errors returned (possibly wrapped) by implementations.
var (
	// ErrNotFound reports that the account, roster item or log does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrExists reports that the account already exists.
	ErrExists = errors.New("storage: already exists")
	// ErrQuotaExceeded reports that a per-account limit (such as the number
	// of stored offline messages) has been reached.
	ErrQuotaExceeded = errors.New("storage: quota exceeded")
	// ErrCorrupt reports a log whose hash chain or head signature does not
	// verify.
	ErrCorrupt = errors.New("storage: log corrupt")
	// ErrClosed reports a call on a closed store.
	ErrClosed = errors.New("storage: closed")
	// ErrConflict reports that another node of a cluster appended to the
	// shared copy of a log first; the write may be retried once this node
	// has caught up.
	ErrConflict = errors.New("storage: conflict")
)

// ScramKeys are the salted SCRAM keys (RFC 5802) stored for one hash
// function. It has the same fields as sasl.ScramKeys, so a value converts
// with a plain type conversion.
type ScramKeys struct {
	Salt      []byte `json:"salt"`
	Iters     int    `json:"iters"`
	StoredKey []byte `json:"stored_key"`
	ServerKey []byte `json:"server_key"`
}

// Credentials are the SCRAM keys of an account. It has the same fields as
// sasl.Credentials, so a value converts with a plain type conversion.
type Credentials struct {
	SHA1   ScramKeys `json:"sha1"`
	SHA256 ScramKeys `json:"sha256"`
}

// Roster subscription states (RFC 6121 §2.1.2.5).
const (
	SubNone = "none"
	SubTo   = "to"
	SubFrom = "from"
	SubBoth = "both"
)

// RosterItem is one contact of an account's roster (RFC 6121 §2.1).
type RosterItem struct {
	JID          string   `json:"jid"` // bare JID of the contact
	Name         string   `json:"name,omitempty"`
	Groups       []string `json:"groups,omitempty"`
	Subscription string   `json:"subscription"`         // none|to|from|both
	Ask          bool     `json:"ask,omitempty"`        // outbound subscription request pending
	PendingIn    bool     `json:"pending_in,omitempty"` // inbound subscription request pending
	Approved     bool     `json:"approved,omitempty"`   // subscription pre-approved (RFC 6121 §3.4)
	Hidden       bool     `json:"hidden,omitempty"`     // pending-in only: not shown in a roster get
}

// OfflineMessage is a message stored for an account while it had no
// available resource (XEP-0160). Stanza holds the raw XML of the stanza.
type OfflineMessage struct {
	ID     int64
	Stanza []byte
	Stored time.Time
}

// Event types of an account's log.
const (
	EventAccountCreated = "account-created" // data: {"key": public key, "credentials": Credentials}
	EventAccountDeleted = "account-deleted" // data: {}
	EventCredentialsSet = "credentials-set" // data: {"credentials": Credentials}
	EventRosterSet      = "roster-set"      // data: RosterItem
	EventRosterRemoved  = "roster-removed"  // data: {"jid": bare JID}
	EventOfflineStored  = "offline-stored"  // data: {"stanza": XML} or {"stanza64": base64 XML}; the message ID is the seq
	EventOfflineDeleted = "offline-deleted" // data: {"ids": [ID...]}
	EventRoleSet        = "role-set"        // data: {"role": RoleAdmin|RoleMember|RoleLimited}
	EventVCardSet       = "vcard-set"       // data: {"vcard": XML} or {"vcard64": base64 XML}
)

// Account roles. An account is a member unless a role-set event says
// otherwise.
const (
	RoleAdmin   = "admin"   // administers the server
	RoleMember  = "member"  // the default
	RoleLimited = "limited" // no federation, no invites
)

// ValidRole reports whether role is one of RoleAdmin, RoleMember and
// RoleLimited.
func ValidRole(role string) bool {
	return role == RoleAdmin || role == RoleMember || role == RoleLimited
}

// ServerLogFederation names the server log of the federation domain lists.
const ServerLogFederation = "federation"

// Event types of the federation server log. Each event's data is
// {"domain": domain}; a domain has at most one rule, the last one set.
const (
	EventFederationAllow  = "federation-allow"
	EventFederationDeny   = "federation-deny"
	EventFederationRemove = "federation-remove"
)

// Federation rule actions.
const (
	FederationAllow = "allow"
	FederationDeny  = "deny"
)

// Event is one entry of an account's log, or of a server log, whose name is
// then in Account. Data is JSON. Prev is the Hash of the previous event
// (empty for seq 1) and Hash is [HashEvent] of this one.
type Event struct {
	Account string
	Seq     uint64
	Type    string
	Data    []byte
	Time    time.Time
	Prev    []byte
	Hash    []byte
}

// Head is the signed head of an account's log: the seq and hash of its last
// event, and the Ed25519 signature of [HeadMessage] by the account's key.
type Head struct {
	Account string
	Seq     uint64
	Hash    []byte
	Sig     []byte
}
