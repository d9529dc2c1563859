// Package sasl implements the server side of SASL authentication for XMPP
// (RFC 6120 §6): SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) with
// their -PLUS variants using tls-exporter (RFC 9266) or tls-server-end-point
// (RFC 5929) channel binding, and PLAIN (RFC 4616) over TLS only. It also
// provides the channel-binding advertisement of XEP-0440.
//
// The SCRAM arithmetic is done by github.com/xdg-go/scram; this package picks
// the mechanism and channel binding, looks accounts up, enforces the XMPP
// rules (authzid, downgrade protection, not revealing unknown users) and maps
// every outcome onto an RFC 6120 §6.5 condition.
//
// # Use
//
// The caller (the c2s stream) advertises [Server.Mechanisms] and
// [ChannelBindingTypes], calls [Server.Start] for the mechanism of the
// client's <auth/>, then feeds every base64-decoded client message to
// [Negotiation.Step]: out is sent in a <challenge/> while done is false, in
// <success/> when done is true, and an error (always a *[Failure]) becomes
// <failure/>.
//
// Storage keeps [Credentials] (salted SCRAM keys made by [NewCredentials]),
// never the password.
package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/xdg-go/scram"
)

// Mechanism names.
const (
	ScramSHA256Plus = "SCRAM-SHA-256-PLUS"
	ScramSHA1Plus   = "SCRAM-SHA-1-PLUS"
	ScramSHA256     = "SCRAM-SHA-256"
	ScramSHA1       = "SCRAM-SHA-1"
	Plain           = "PLAIN"
)

// Defined conditions of RFC 6120 §6.5.
const (
	Aborted              = "aborted"
	AccountDisabled      = "account-disabled"
	CredentialsExpired   = "credentials-expired"
	EncryptionRequired   = "encryption-required"
	IncorrectEncoding    = "incorrect-encoding"
	InvalidAuthzID       = "invalid-authzid"
	InvalidMechanism     = "invalid-mechanism"
	MalformedRequest     = "malformed-request"
	MechanismTooWeak     = "mechanism-too-weak"
	NotAuthorized        = "not-authorized"
	TemporaryAuthFailure = "temporary-auth-failure"
)

// ErrUnknownUser is returned (possibly wrapped) by [Server.Lookup] when there
// is no account of that name. The client is told not-authorized, exactly as
// for a wrong password.
var ErrUnknownUser = errors.New("unknown user")

// Failure is a SASL failure (RFC 6120 §6.4.5): Condition is one of the
// defined conditions, Text an optional human-readable explanation that may be
// sent to the client. It may carry an underlying cause for logs (Unwrap),
// which is never sent.
type Failure struct {
	Condition string
	Text      string
	err       error
}

func fail(cond, text string) *Failure { return &Failure{Condition: cond, Text: text} }

func (f *Failure) Error() string {
	s := "sasl: " + f.Condition
	if f.Text != "" {
		s += ": " + f.Text
	}
	if f.err != nil {
		s += ": " + f.err.Error()
	}
	return s
}

// Unwrap returns the cause of the failure, if any.
func (f *Failure) Unwrap() error { return f.err }

// Is reports whether target is a *Failure with the same condition, so that
// errors.Is(err, &sasl.Failure{Condition: sasl.NotAuthorized}) works.
func (f *Failure) Is(target error) bool {
	t, ok := target.(*Failure)
	return ok && t.Condition == f.Condition
}

// DefaultIters is the PBKDF2 iteration count used when none is given
// (RFC 7677 §4 recommends at least 4096).
const DefaultIters = 4096

// maxMessage bounds a single client message; real SCRAM and PLAIN messages
// are a few hundred bytes at most.
const maxMessage = 4096

// Server holds the SASL configuration of a listener. Its zero value with
// Lookup set is usable. A Server must not be copied after first use.
type Server struct {
	// Lookup returns the stored credentials of the account with the given
	// (prepared) username, or an error wrapping ErrUnknownUser. Any other
	// error gives temporary-auth-failure. If the error is (or wraps) a
	// *Failure such as account-disabled and the real credentials are returned
	// with it, that failure is reported only once the client has proved it
	// knows the password, so it reveals nothing to anyone else.
	Lookup func(ctx context.Context, username string) (Credentials, error)

	// AllowPlain offers PLAIN. It is only ever offered over TLS.
	AllowPlain bool

	// PrepareUsername prepares the username the client sent before the
	// lookup (PRECIS UsernameCaseMapped, jid.PrepareLocal). nil leaves it
	// unchanged.
	PrepareUsername func(string) (string, error)

	// Secret keys the fake salts shown for unknown users, so that asking
	// twice for the same unknown user yields the same salt. It should be
	// stable across restarts; when empty a random key is made per Server.
	Secret []byte

	// FakeIters is the iteration count shown for unknown users; it should
	// match what accounts are created with. 0 means DefaultIters.
	FakeIters int

	once       sync.Once
	autoSecret [32]byte
}

// Mechanisms returns the mechanisms to advertise on a connection, strongest
// first. cs is the TLS state (nil without TLS) and serverCert the leaf
// certificate this server presented on it (nil if unknown). The -PLUS
// variants are offered only when a channel binding type is usable, PLAIN only
// with TLS and AllowPlain.
func (s *Server) Mechanisms(cs *tls.ConnectionState, serverCert *x509.Certificate) []string {
	return s.mechanisms(cs, len(ChannelBindingTypes(cs, serverCert)) > 0)
}

func (s *Server) mechanisms(cs *tls.ConnectionState, plus bool) []string {
	m := make([]string, 0, 5)
	if plus {
		m = append(m, ScramSHA256Plus, ScramSHA1Plus)
	}
	m = append(m, ScramSHA256, ScramSHA1)
	if s.AllowPlain && isTLS(cs) {
		m = append(m, Plain)
	}
	return m
}

func isTLS(cs *tls.ConnectionState) bool { return cs != nil && cs.HandshakeComplete }

// Start begins a negotiation of mech on a connection with TLS state cs (nil
// without TLS) on which this server presented serverCert. A mechanism that
// Mechanisms would not offer there gives a *Failure with invalid-mechanism.
func (s *Server) Start(ctx context.Context, mech string, cs *tls.ConnectionState, serverCert *x509.Certificate) (*Negotiation, error) {
	cbTypes := ChannelBindingTypes(cs, serverCert)
	if !slices.Contains(s.mechanisms(cs, len(cbTypes) > 0), mech) {
		return nil, fail(InvalidMechanism, "")
	}
	n := &Negotiation{s: s, mech: mech, cs: cs, cert: serverCert, cbTypes: cbTypes}
	switch mech {
	case ScramSHA1, ScramSHA1Plus:
		n.hash = scram.SHA1
	case ScramSHA256, ScramSHA256Plus:
		n.hash = scram.SHA256
	}
	n.plus = mech == ScramSHA1Plus || mech == ScramSHA256Plus
	return n, nil
}

type negState uint8

const (
	stateStart negState = iota
	stateFinal          // SCRAM: server-first sent
	stateDone           // succeeded or failed
)

// Negotiation is one authentication exchange. It is not safe for concurrent
// use.
type Negotiation struct {
	s       *Server
	mech    string
	cs      *tls.ConnectionState
	cert    *x509.Certificate
	cbTypes []string
	hash    scram.HashGeneratorFcn
	plus    bool

	state     negState
	emptySent bool // the empty challenge for a missing initial response
	conv      *scram.ServerConversation
	candidate string // prepared username, before success
	fake      bool   // unknown user: the conversation can only fail
	deferred  *Failure
	username  string
	authzID   string
	succeeded bool
}

// Mechanism returns the negotiated mechanism name.
func (n *Negotiation) Mechanism() string { return n.mech }

// Username returns the authenticated, prepared username (the localpart);
// it is empty until Step has reported success.
func (n *Negotiation) Username() string { return n.username }

// AuthzID returns the authorization identity the client sent (empty if none);
// valid after success. Its localpart has been checked against the username,
// its domain has not.
func (n *Negotiation) AuthzID() string {
	if !n.succeeded {
		return ""
	}
	return n.authzID
}

// Step processes one client message, base64-decoded by the caller (empty for
// an <auth/> without initial response). While done is false, out goes into a
// <challenge/>; when done is true with a nil error, authentication succeeded
// and out (possibly empty) is the additional data of <success/>. A non-nil
// error is always a *Failure and ends the negotiation.
func (n *Negotiation) Step(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	if n.state == stateDone {
		return nil, true, fail(MalformedRequest, "negotiation already finished")
	}
	if len(in) > maxMessage {
		n.state = stateDone
		return nil, true, fail(MalformedRequest, "message too long")
	}
	if n.state == stateStart && len(in) == 0 {
		// RFC 6120 §6.4.2: without an initial response the server sends
		// an empty challenge; a second empty message is an error.
		if n.emptySent {
			n.state = stateDone
			return nil, true, fail(MalformedRequest, "empty response")
		}
		n.emptySent = true
		return nil, false, nil
	}
	if n.mech == Plain {
		err = n.stepPlain(ctx, in)
		n.state = stateDone
		if err != nil {
			return nil, true, err
		}
		return nil, true, n.succeed()
	}
	out, done, err = n.stepSCRAM(ctx, in)
	if err != nil {
		n.state = stateDone
		return nil, true, err
	}
	if done {
		n.state = stateDone
		if err := n.succeed(); err != nil {
			return nil, true, err
		}
		return out, true, nil
	}
	return out, false, nil
}

// succeed finishes a negotiation whose credentials were verified.
func (n *Negotiation) succeed() error {
	if n.fake || n.candidate == "" {
		return fail(NotAuthorized, "")
	}
	if n.deferred != nil {
		return n.deferred
	}
	n.username = n.candidate
	n.succeeded = true
	return nil
}

// lookup prepares username, checks authzID against it and fetches the
// account's credentials. It returns the prepared name (the raw one if it
// does not prepare). A missing account gives zero credentials with n.fake
// set. A non-nil error is a *Failure.
func (n *Negotiation) lookup(ctx context.Context, username, authzID string) (Credentials, string, error) {
	s := n.s
	prepared, err := s.prepareUsername(username)
	if err != nil || prepared == "" {
		n.fake = true
		return Credentials{}, username, nil
	}
	if err := checkAuthzID(authzID, prepared, s.prepareUsername); err != nil {
		return Credentials{}, prepared, err
	}
	n.authzID = authzID
	if s.Lookup == nil {
		return Credentials{}, prepared, &Failure{Condition: TemporaryAuthFailure, err: errors.New("no credential lookup configured")}
	}
	creds, err := s.Lookup(ctx, prepared)
	var f *Failure
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownUser):
		n.fake = true
		return Credentials{}, prepared, nil
	case errors.As(err, &f):
		n.deferred = f
	default:
		return Credentials{}, prepared, &Failure{Condition: TemporaryAuthFailure, err: fmt.Errorf("look up %q: %w", prepared, err)}
	}
	n.candidate = prepared
	return creds, prepared, nil
}

func (s *Server) prepareUsername(u string) (string, error) {
	if s.PrepareUsername == nil {
		return u, nil
	}
	return s.PrepareUsername(u)
}

// checkAuthzID accepts an empty authzid, or a bare JID whose localpart
// prepares to username. The domain is left to the caller.
func checkAuthzID(authzID, username string, prep func(string) (string, error)) error {
	if authzID == "" {
		return nil
	}
	local, domain, ok := strings.Cut(authzID, "@")
	if !ok || local == "" || domain == "" || strings.Contains(local, "/") || strings.ContainsAny(domain, "@/") {
		return fail(InvalidAuthzID, "")
	}
	local, err := prep(local)
	if err != nil || local != username {
		return fail(InvalidAuthzID, "")
	}
	return nil
}

// secret returns the key for fake salts.
func (s *Server) secret() []byte {
	if len(s.Secret) > 0 {
		return s.Secret
	}
	s.once.Do(func() { _, _ = rand.Read(s.autoSecret[:]) })
	return s.autoSecret[:]
}

// fakeKeys returns plausible keys for an unknown user: a salt that is stable
// for (hash, username) and keys no password matches.
func (s *Server) fakeKeys(hashName, username string, size int) ScramKeys {
	mac := hmac.New(sha256.New, s.secret())
	mac.Write([]byte(hashName))
	mac.Write([]byte{0})
	mac.Write([]byte(username))
	salt := mac.Sum(nil)[:saltLen]
	k := make([]byte, 2*size)
	_, _ = rand.Read(k)
	iters := s.FakeIters
	if iters <= 0 {
		iters = DefaultIters
	}
	return ScramKeys{Salt: salt, Iters: iters, StoredKey: k[:size:size], ServerKey: k[size:]}
}
