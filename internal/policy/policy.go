// Package policy decides who may talk to whom: the federation mode and domain
// lists, and per-account roles.
//
// # Federation
//
// The mode, from the config file, is one of:
//
//   - open (the default): every domain, except those with a deny rule;
//   - denylist: the same as open; the name says that the deny rules are the
//     point;
//   - allowlist: only domains with an allow rule;
//   - private: no federation at all, whatever the rules.
//
// Rules come from two places: the allow and deny lists of the config file,
// and the rules an admin sets in storage (`casp3r federation allow|deny`).
// A domain has at most one rule. A stored rule wins over the config file's
// for the same domain; a domain in both lists of the config file is denied.
//
// A rule for a domain also covers its subdomains: a rule for example.org
// applies to muc.example.org and to a.b.example.org, unless a subdomain has a
// rule of its own, in which case the most specific rule applies (deny
// example.org and allow chat.example.org lets chat.example.org through). IP
// address domains match only themselves.
//
// # Roles
//
// Accounts are admins, members or limited (storage.RoleAdmin, …). Limited
// accounts exchange no stanzas with other servers and make no invites;
// [Policy.Limited] says whether an account is one.
//
// # Freshness
//
// The stored rules are read at most once per second and each account's role
// is kept for a second, so a change made by another process (the CLI, while
// the server runs) takes effect within about a second, and the checks on the
// stanza path cost a map lookup.
package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"casp3r/internal/jid"
	"casp3r/internal/storage"
)

// Federation modes.
const (
	ModeOpen      = "open"
	ModeDenylist  = "denylist"
	ModeAllowlist = "allowlist"
	ModePrivate   = "private"
)

// ValidMode reports whether mode is one of the federation modes.
func ValidMode(mode string) bool {
	return mode == ModeOpen || mode == ModeDenylist || mode == ModeAllowlist || mode == ModePrivate
}

// Rule actions, as stored (storage.FederationAllow and FederationDeny).
const (
	Allow = storage.FederationAllow
	Deny  = storage.FederationDeny
)

// Origins of a rule.
const (
	OriginConfig = "config" // the config file's allow or deny list
	OriginAdmin  = "admin"  // set in storage by an admin
)

// refresh is how long stored rules and roles are used before being read
// again.
const refresh = time.Second

// Store is the storage the policy reads; *sqlite.DB implements it.
type Store interface {
	// FederationRules returns the stored rules: Allow or Deny by domain.
	FederationRules(ctx context.Context) (map[string]string, error)
	// Role returns the role of user, or storage.ErrNotFound.
	Role(ctx context.Context, user string) (string, error)
}

// Policy answers federation and role questions. It is safe for concurrent
// use.
type Policy struct {
	// Logger receives storage failures (nil: discarded). Set it while
	// wiring.
	Logger *slog.Logger

	st          Store
	mode        string
	allow, deny []string
	now         func() time.Time // tests replace it

	rules       atomic.Pointer[ruleSet]
	rulesReload sync.Mutex // held by the goroutine reading the stored rules

	rolesMu    sync.Mutex
	roles      map[string]roleEntry
	rolesSwept time.Time
}

// ruleSet is the merged rules as read at a time.
type ruleSet struct {
	at     time.Time
	action map[string]string // domain -> Allow or Deny
}

type roleEntry struct {
	role string // "" for an unknown account
	at   time.Time
}

// New returns the policy of mode with the config file's allow and deny
// lists, merged with the rules stored in st. An empty mode is ModeOpen; a
// mode that is not valid (see ValidMode) is treated as ModePrivate, so that
// a mistake does not open the server. Domains in the lists are prepared
// (RFC 7622 §3.2); one that does not prepare can match nothing.
func New(st Store, mode string, allow, deny []string) *Policy {
	if mode == "" {
		mode = ModeOpen
	}
	if !ValidMode(mode) {
		mode = ModePrivate
	}
	return &Policy{
		st:    st,
		mode:  mode,
		allow: prepareAll(allow),
		deny:  prepareAll(deny),
		now:   time.Now,
		roles: make(map[string]roleEntry),
	}
}

func prepareAll(domains []string) []string {
	out := make([]string, 0, len(domains))
	for _, d := range domains {
		if p, err := jid.PrepareDomain(d); err == nil {
			d = p
		}
		out = append(out, d)
	}
	return out
}

// Mode returns the federation mode in force.
func (p *Policy) Mode() string { return p.mode }

func (p *Policy) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

// FederationAllowed reports whether the server may exchange stanzas with
// domain, a prepared domainpart: never in private mode nor with a denied
// domain; in allowlist mode only with an allowed one; otherwise yes.
func (p *Policy) FederationAllowed(ctx context.Context, domain string) bool {
	if p.mode == ModePrivate {
		return false
	}
	switch lookup(p.currentRules(ctx), domain) {
	case Deny:
		return false
	case Allow:
		return true
	}
	return p.mode != ModeAllowlist
}

// lookup returns the action of the most specific rule covering domain: its
// own, else its parent domain's, and so on; "" if none.
func lookup(rules map[string]string, domain string) string {
	if len(rules) == 0 {
		return ""
	}
	if a, ok := rules[domain]; ok {
		return a
	}
	if isIP(domain) {
		return ""
	}
	for {
		i := strings.IndexByte(domain, '.')
		if i < 0 {
			return ""
		}
		domain = domain[i+1:]
		if a, ok := rules[domain]; ok {
			return a
		}
	}
}

// isIP reports whether domain is an IPv4 address or a bracketed IPv6
// literal.
func isIP(domain string) bool {
	if strings.HasPrefix(domain, "[") {
		return true
	}
	// Only digits and dots can be an IPv4 address: skip ParseAddr, whose
	// error allocates, for names.
	for i := 0; i < len(domain); i++ {
		if c := domain[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	_, err := netip.ParseAddr(domain)
	return err == nil
}

// currentRules returns the merged rules, reading the stored ones again when
// they are older than a second. While one goroutine reads them, the others
// use the previous set.
func (p *Policy) currentRules(ctx context.Context) map[string]string {
	rs := p.rules.Load()
	if rs != nil && p.fresh(rs.at) {
		return rs.action
	}
	if rs == nil {
		p.rulesReload.Lock() // nothing to fall back on: wait for the first read
	} else if !p.rulesReload.TryLock() {
		return rs.action
	}
	defer p.rulesReload.Unlock()
	if cur := p.rules.Load(); cur != nil && p.fresh(cur.at) {
		return cur.action // read by the goroutine we waited for
	}
	now := p.now()
	stored, err := p.st.FederationRules(ctx)
	if err != nil {
		// Try again in a second.
		p.logger().Error("policy: load federation rules", "err", err)
		if rs != nil {
			// Keep the last good rules.
			p.rules.Store(&ruleSet{at: now, action: rs.action})
			return rs.action
		}
		stored = nil // the config file's rules only, until a read succeeds
	}
	merged := make(map[string]string, len(p.allow)+len(p.deny)+len(stored))
	for _, r := range MergeRules(p.allow, p.deny, stored) {
		merged[r.Domain] = r.Action
	}
	p.rules.Store(&ruleSet{at: now, action: merged})
	return merged
}

// fresh reports whether something read at at may still be used.
func (p *Policy) fresh(at time.Time) bool {
	d := p.now().Sub(at)
	return d >= 0 && d < refresh
}

// Limited reports whether user (a localpart) has the limited role. An
// unknown account is not limited. If its role cannot be read, the last one
// read is used, or false.
func (p *Policy) Limited(ctx context.Context, user string) bool {
	return p.role(ctx, user) == storage.RoleLimited
}

// role returns the role of user, "" for an unknown account, from the cache
// when it is fresh.
func (p *Policy) role(ctx context.Context, user string) string {
	p.rolesMu.Lock()
	e, ok := p.roles[user]
	p.rolesMu.Unlock()
	if ok && p.fresh(e.at) {
		return e.role
	}
	now := p.now()
	role, err := p.st.Role(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		role, err = "", nil
	}
	if err != nil {
		p.logger().Error("policy: load role", "user", user, "err", err)
		return e.role // the last one read, or ""
	}
	p.rolesMu.Lock()
	defer p.rolesMu.Unlock()
	if d := now.Sub(p.rolesSwept); d < 0 || d >= refresh {
		// Forget the stale entries, so the cache holds only the
		// accounts checked in the last second or so.
		for u, e := range p.roles {
			if !p.fresh(e.at) {
				delete(p.roles, u)
			}
		}
		p.rolesSwept = now
	}
	p.roles[user] = roleEntry{role: role, at: now}
	return role
}

// Rules reads the stored rules now, bypassing the cache, and returns the
// rules in force merged with the config file's (see MergeRules).
func (p *Policy) Rules(ctx context.Context) ([]Rule, error) {
	stored, err := p.st.FederationRules(ctx)
	if err != nil {
		return nil, fmt.Errorf("load federation rules: %w", err)
	}
	return MergeRules(p.allow, p.deny, stored), nil
}

// Rule is one federation rule in force.
type Rule struct {
	Domain string
	Action string // Allow or Deny
	Origin string // OriginConfig or OriginAdmin
	// Config is the action the config file gives the domain when a stored
	// rule overrides it, else "".
	Config string
}

// MergeRules merges the config file's allow and deny lists with the stored
// rules (Allow or Deny by domain), as New does, and returns the rules in
// force sorted by domain: a stored rule wins over the config file's, and
// deny wins over allow within the config file.
func MergeRules(allow, deny []string, stored map[string]string) []Rule {
	byDomain := make(map[string]*Rule, len(allow)+len(deny)+len(stored))
	for _, d := range allow {
		byDomain[d] = &Rule{Domain: d, Action: Allow, Origin: OriginConfig}
	}
	for _, d := range deny {
		byDomain[d] = &Rule{Domain: d, Action: Deny, Origin: OriginConfig}
	}
	for d, a := range stored {
		r := &Rule{Domain: d, Action: a, Origin: OriginAdmin}
		if c, ok := byDomain[d]; ok && c.Action != a {
			r.Config = c.Action
		}
		byDomain[d] = r
	}
	out := make([]Rule, 0, len(byDomain))
	for _, r := range byDomain {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Rule) int { return cmp.Compare(a.Domain, b.Domain) })
	return out
}
