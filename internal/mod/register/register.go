// Package register implements XEP-0077 (In-Band Registration): creating an
// account before authentication, and changing the password of or removing
// one's own account after it.
//
// Accounts are created only when registration is open; the server decides
// whether to wire the module at all. Passwords are never stored: only the
// salted SCRAM keys made by sasl.NewCredentials.
package register

import (
	"context"
	"errors"
	"fmt"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/sasl"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/xmlstream"
)

// NS is the namespace of the registration query.
const NS = "jabber:iq:register"

// instructions is shown by clients above the registration form.
const instructions = "Choose a username and password to register with this server."

// Store is the account storage the module needs; *sqlite.DB implements it.
type Store interface {
	// CreateAccount fails with storage.ErrExists if user exists.
	CreateAccount(ctx context.Context, user string, c storage.Credentials) error
	// DeleteAccount fails with storage.ErrNotFound if user does not exist.
	DeleteAccount(ctx context.Context, user string) error
	// SetCredentials fails with storage.ErrNotFound if user does not exist.
	SetCredentials(ctx context.Context, user string, c storage.Credentials) error
	AccountExists(ctx context.Context, user string) (bool, error)
}

// Module handles registration queries.
type Module struct {
	// OnRemove, if set, is called after an account removed itself, so that
	// the server can close the account's sessions. It runs before the
	// result of the removal is routed back to the requesting session: a
	// callback that closes that session at once loses the result, which
	// XEP-0077 §3.2 allows (the stream error tells the client enough).
	OnRemove func(ctx context.Context, user string)

	domain jid.JID
	st     Store
	iters  int
	open   bool
}

var _ router.IQHandler = (*Module)(nil)

// New returns a module for domain. iters is the PBKDF2 iteration count of
// new credentials (sasl.DefaultIters when ≤ 0). Unless open, accounts
// cannot be created (only changed or removed by their owners).
func New(domain jid.JID, st Store, iters int, open bool) *Module {
	if iters < 0 {
		iters = 0
	}
	return &Module{domain: domain, st: st, iters: iters, open: open}
}

// Register wires the authenticated handler into r. HandlePreAuth is called
// by c2s directly.
func (m *Module) Register(r *router.Router) { r.HandleIQ(NS, "query", m) }

// form is the registration form sent before authentication.
func form() *xmlstream.Element {
	return xmlstream.New(NS, "query").Append(
		xmlstream.New(NS, "instructions").SetText(instructions),
		xmlstream.New(NS, "username"),
		xmlstream.New(NS, "password"),
	)
}

// query returns the registration query of iq (type get or set).
func query(iq *xmlstream.Element) (*xmlstream.Element, error) {
	switch iq.Get("type") {
	case "get", "set":
	default:
		return nil, stanza.BadRequest.WithText("iq type must be get or set")
	}
	q := iq.Child(NS, "query")
	if q == nil {
		return nil, stanza.ServiceUnavailable
	}
	return q, nil
}

// HandlePreAuth answers a registration iq received on a stream that has not
// authenticated (XEP-0077 §3.1); iq has no from. A get returns the form; a
// set with username and password creates the account.
func (m *Module) HandlePreAuth(ctx context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	q, err := query(iq)
	if err != nil {
		return nil, err
	}
	if !m.open {
		return nil, stanza.NotAllowed.WithText("registration is closed")
	}
	if iq.Get("type") == "get" {
		return form(), nil
	}
	if q.Child(NS, "remove") != nil {
		return nil, stanza.NotAuthorized.WithText("log in to remove an account")
	}
	userEl, passEl := q.Child(NS, "username"), q.Child(NS, "password")
	if userEl == nil || passEl == nil {
		return nil, stanza.NotAcceptable.WithText("username and password are required")
	}
	user, err := jid.PrepareLocal(userEl.Text())
	if err != nil {
		return nil, stanza.NotAcceptable.WithText("username is not valid")
	}
	password := passEl.Text()
	if password == "" {
		return nil, stanza.NotAcceptable.WithText("password is required")
	}
	exists, err := m.st.AccountExists(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	if exists {
		// Checked before deriving keys, which is the expensive part.
		return nil, stanza.Conflict.WithText("username is taken")
	}
	creds, err := m.credentials(password)
	if err != nil {
		return nil, err
	}
	if err := m.st.CreateAccount(ctx, user, creds); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nil, stanza.Conflict.WithText("username is taken")
		}
		return nil, fmt.Errorf("register: %w", err)
	}
	return nil, nil
}

// HandleIQ answers a registration iq from an authenticated session,
// addressed to the domain or the sender's own bare JID (XEP-0077 §3.2,
// §3.3): a get tells the account is registered, a set changes its password
// or, with <remove/>, deletes it.
func (m *Module) HandleIQ(ctx context.Context, iq *xmlstream.Element) (*xmlstream.Element, error) {
	q, err := query(iq)
	if err != nil {
		return nil, err
	}
	from, err := jid.Parse(iq.Get("from"))
	if err != nil || from.Local() == "" {
		return nil, stanza.NotAllowed
	}
	to, err := jid.Parse(iq.Get("to"))
	if err != nil {
		return nil, stanza.JIDMalformed
	}
	if to.Local() != "" && to.Bare() != from.Bare() {
		return nil, stanza.ServiceUnavailable
	}
	user := from.Local()
	if iq.Get("type") == "get" {
		return xmlstream.New(NS, "query").Append(
			xmlstream.New(NS, "registered"),
			xmlstream.New(NS, "username").SetText(user),
		), nil
	}
	if q.Child(NS, "remove") != nil {
		return nil, m.remove(ctx, user)
	}
	userEl, passEl := q.Child(NS, "username"), q.Child(NS, "password")
	if userEl == nil || passEl == nil {
		return nil, stanza.BadRequest.WithText("username and password are required")
	}
	name, err := jid.PrepareLocal(userEl.Text())
	if err != nil || name != user {
		return nil, stanza.NotAllowed.WithText("only your own password can be changed")
	}
	password := passEl.Text()
	if password == "" {
		return nil, stanza.NotAcceptable.WithText("password is required")
	}
	creds, err := m.credentials(password)
	if err != nil {
		return nil, err
	}
	if err := m.st.SetCredentials(ctx, user, creds); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, stanza.ItemNotFound
		}
		return nil, fmt.Errorf("change password: %w", err)
	}
	return nil, nil
}

func (m *Module) remove(ctx context.Context, user string) error {
	if err := m.st.DeleteAccount(ctx, user); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return stanza.ItemNotFound
		}
		return fmt.Errorf("remove account: %w", err)
	}
	if m.OnRemove != nil {
		m.OnRemove(ctx, user)
	}
	return nil
}

// credentials derives the stored credentials of password. sasl refuses
// only passwords it cannot prepare (the iteration count is valid and salts
// come from crypto/rand), so any failure is the password's.
func (m *Module) credentials(password string) (storage.Credentials, error) {
	c, err := sasl.NewCredentials(password, m.iters)
	if err != nil {
		return storage.Credentials{}, stanza.NotAcceptable.WithText("password contains characters that are not allowed")
	}
	return storage.Credentials{
		SHA1:   storage.ScramKeys(c.SHA1),
		SHA256: storage.ScramKeys(c.SHA256),
	}, nil
}
