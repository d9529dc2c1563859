// Package offline implements XEP-0160 (Best Practices for Handling Offline
// Messages): messages for an account with no available resource are stored,
// stamped with a XEP-0203 (Delayed Delivery) <delay/>, and delivered in the
// order they arrived to the first resource that sends initial presence with
// a non-negative priority, then deleted.
package offline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/xmlstream"
)

// NSDelay is the namespace of XEP-0203 delayed delivery.
const NSDelay = "urn:xmpp:delay"

// stampLayout is the XEP-0082 DateTime profile, in UTC with milliseconds.
const stampLayout = "2006-01-02T15:04:05.000Z"

// Store is the storage the module needs; *sqlite.DB implements it.
type Store interface {
	// StoreOffline stores a serialised stanza for user, or fails with
	// storage.ErrQuotaExceeded when user already has max messages.
	StoreOffline(ctx context.Context, user string, stanza []byte, max int) error
	// OfflineMessages returns user's stored messages, oldest first.
	OfflineMessages(ctx context.Context, user string) ([]storage.OfflineMessage, error)
	// DeleteOffline deletes the given messages of user.
	DeleteOffline(ctx context.Context, user string, ids ...int64) error
}

// Module stores and delivers offline messages. It implements
// router.OfflineStore.
type Module struct {
	// Logger receives delivery problems (nil: discarded). Set it while
	// wiring.
	Logger *slog.Logger
	// Sync, when set, runs before the stored messages are read at login:
	// on a node of a cluster it waits until the node has applied every
	// message stored through the other nodes. Set it while wiring.
	Sync func(ctx context.Context) error

	r      *router.Router
	domain string
	st     Store
	max    int
	now    func() time.Time // tests replace it

	mu       sync.Mutex
	flushing map[string]bool // users whose messages are being delivered → look again when done
}

var _ router.OfflineStore = (*Module)(nil)

// New returns a module storing at most max messages per account, for the
// domain r serves.
func New(r *router.Router, st Store, max int) *Module {
	return &Module{
		r:        r,
		domain:   r.Domain().String(),
		st:       st,
		max:      max,
		now:      time.Now,
		flushing: make(map[string]bool),
	}
}

func (m *Module) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

// StoreOffline stores message st for user, with a <delay/> from the domain
// added unless st carries one already. st itself is not modified. A full
// store fails with service-unavailable (XEP-0160 §3), as does a missing
// account.
func (m *Module) StoreOffline(ctx context.Context, user string, st *xmlstream.Element) error {
	el := st
	if st.Child(NSDelay, "delay") == nil {
		// A shallow copy with its own node slice: st is shared with the
		// caller and must not change.
		c := *st
		c.Nodes = make([]xmlstream.Node, len(st.Nodes), len(st.Nodes)+1)
		copy(c.Nodes, st.Nodes)
		c.Append(xmlstream.New(NSDelay, "delay",
			"from", m.domain, "stamp", m.now().UTC().Format(stampLayout)))
		el = &c
	}
	// Written with its namespace declared, as xmlstream.ParseFrame needs to
	// give it back unchanged.
	data := xmlstream.AppendXML(nil, el, "")
	if err := m.st.StoreOffline(ctx, user, data, m.max); err != nil {
		switch {
		case errors.Is(err, storage.ErrQuotaExceeded):
			return stanza.ServiceUnavailable.WithText("offline message storage is full")
		case errors.Is(err, storage.ErrNotFound):
			return stanza.ServiceUnavailable // the account was deleted meanwhile
		}
		return fmt.Errorf("store offline message: %w", err)
	}
	return nil
}

// InitialPresence delivers the stored messages of res's account to res,
// oldest first, and deletes them. The server calls it after res sent its
// initial presence. A resource with a negative priority gets nothing
// (RFC 6121 §8.5.2.1.1); when two resources come online together, only one
// of them gets the messages. A stored message that cannot be parsed is
// logged and deleted.
func (m *Module) InitialPresence(ctx context.Context, res router.Resource) {
	if res.Priority < 0 || res.JID.Local() == "" {
		return
	}
	m.run(ctx, res.JID.Local(), &res)
}

// Redeliver delivers user's stored messages now if the resource a message
// to the bare JID would go to is bound on this node. On a node of a
// cluster, another node may store messages for a user because it had not
// yet heard of the resource just bound here; the cluster calls Redeliver
// once such messages have reached this node.
func (m *Module) Redeliver(ctx context.Context, user string) {
	if user != "" {
		m.run(ctx, user, nil)
	}
}

// run delivers user's messages to res, or (res nil) to the local resource
// chosen by target; again while more were stored meanwhile.
func (m *Module) run(ctx context.Context, user string, res *router.Resource) {
	// A resource coming online while a delivery is under way has nothing
	// to wait for: the messages are on their way to another resource. New
	// messages (res nil) make the running delivery look again.
	if !m.begin(user, res == nil) {
		return
	}
	catchUp := res != nil
	for {
		if res == nil {
			if r, ok := m.target(user); ok {
				res = &r
			}
		}
		if res != nil {
			m.deliver(ctx, user, *res, catchUp)
		}
		if !m.end(user) {
			return
		}
		res, catchUp = nil, false
	}
}

// target returns the resource of user that gets messages stored while it
// was online elsewhere: of those a message to the bare JID goes to
// (router.TopResources), the first by full JID, so that every node of a
// cluster picks the same; only if it is bound on this node.
func (m *Module) target(user string) (router.Resource, bool) {
	bare, err := jid.New(user, m.domain, "")
	if err != nil {
		return router.Resource{}, false
	}
	top := m.r.TopResources(bare)
	if len(top) == 0 {
		return router.Resource{}, false
	}
	best := slices.MinFunc(top, func(a, b router.Resource) int { return strings.Compare(a.JID.String(), b.JID.String()) })
	return best, best.Node == ""
}

// deliver sends user's stored messages to res and deletes them; with catchUp,
// after catching up with the cluster.
func (m *Module) deliver(ctx context.Context, user string, res router.Resource, catchUp bool) {
	log := m.logger()
	if catchUp && m.Sync != nil {
		if err := m.Sync(ctx); err != nil {
			log.Warn("catch up before delivering offline messages", "user", user, "err", err)
		}
	}
	msgs, err := m.st.OfflineMessages(ctx, user)
	if err != nil {
		log.Error("load offline messages", "user", user, "err", err)
		return
	}
	if len(msgs) == 0 {
		return
	}
	ids := make([]int64, 0, len(msgs))
	for _, msg := range msgs {
		ids = append(ids, msg.ID)
		el, err := xmlstream.ParseFrame(msg.Stanza, xmlstream.Limits{})
		if err != nil {
			log.Warn("drop unparsable offline message", "user", user, "id", msg.ID, "err", err)
			continue
		}
		res.Session.Send(el)
	}
	if err := m.st.DeleteOffline(ctx, user, ids...); err != nil {
		log.Error("delete offline messages", "user", user, "count", len(ids), "err", err)
	}
}

// begin marks user's messages as being delivered; false if they already
// are, in which case the delivery under way looks again when done if again
// is set.
func (m *Module) begin(user string, again bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, busy := m.flushing[user]; busy {
		m.flushing[user] = m.flushing[user] || again
		return false
	}
	m.flushing[user] = false
	return true
}

// end ends a delivery for user, unless another was asked for meanwhile: then
// it reports true and the delivery goes on.
func (m *Module) end(user string) (again bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.flushing[user] {
		m.flushing[user] = false
		return true
	}
	delete(m.flushing, user)
	return false
}
