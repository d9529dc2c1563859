package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"casp3r/internal/storage"
)

// fakeStore is a Store over maps, counting reads; err fails every read.
type fakeStore struct {
	mu        sync.Mutex
	rules     map[string]string
	roles     map[string]string
	err       error
	ruleReads int
	roleReads int
}

func (s *fakeStore) FederationRules(context.Context) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ruleReads++
	if s.err != nil {
		return nil, s.err
	}
	return maps.Clone(s.rules), nil
}

func (s *fakeStore) Role(_ context.Context, user string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roleReads++
	if s.err != nil {
		return "", s.err
	}
	r, ok := s.roles[user]
	if !ok {
		return "", fmt.Errorf("role of %q: %w", user, storage.ErrNotFound)
	}
	return r, nil
}

func (s *fakeStore) set(f func(s *fakeStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *fakeStore) reads() (rules, roles int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ruleReads, s.roleReads
}

// clock is a settable time source, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(st Store, mode string, allow, deny []string) (*Policy, *clock) {
	p := New(st, mode, allow, deny)
	c := newClock()
	p.now = c.Now
	return p, c
}

func TestFederationAllowed(t *testing.T) {
	st := &fakeStore{rules: map[string]string{
		"evil.example":      Deny,
		"good.evil.example": Allow, // more specific than evil.example
		"ok.example":        Allow,
		"friend.example":    Deny,  // overrides the config's allow
		"spam.example":      Allow, // overrides the config's deny
		"192.0.2.7":         Deny,
		"2.1":               Deny, // must not cover the address 192.0.2.1
		"[2001:db8::1]":     Deny,
	}}
	allow := []string{"friend.example", "Pal.Example.", "both.example"}
	deny := []string{"spam.example", "bad.example", "both.example"}
	tests := []struct {
		domain string
		// allowed in open, denylist, allowlist, private
		open, denylist, allowlist, private bool
	}{
		{"other.example", true, true, false, false},
		{"evil.example", false, false, false, false},
		{"muc.evil.example", false, false, false, false},
		{"a.b.evil.example", false, false, false, false},
		{"good.evil.example", true, true, true, false},
		{"x.good.evil.example", true, true, true, false},
		{"notevil.example", true, true, false, false},
		{"ok.example", true, true, true, false},
		{"chat.ok.example", true, true, true, false},
		{"friend.example", false, false, false, false},
		{"spam.example", true, true, true, false},
		{"pal.example", true, true, true, false},
		{"upload.pal.example", true, true, true, false},
		{"bad.example", false, false, false, false},
		{"x.bad.example", false, false, false, false},
		{"both.example", false, false, false, false},
		{"example", true, true, false, false},
		{"192.0.2.7", false, false, false, false},
		{"192.0.2.1", true, true, false, false},
		{"[2001:db8::1]", false, false, false, false},
		{"[2001:db8::2]", true, true, false, false},
	}
	modes := []string{ModeOpen, ModeDenylist, ModeAllowlist, ModePrivate}
	for _, tt := range tests {
		want := []bool{tt.open, tt.denylist, tt.allowlist, tt.private}
		for i, mode := range modes {
			p, _ := newTest(st, mode, allow, deny)
			if got := p.FederationAllowed(context.Background(), tt.domain); got != want[i] {
				t.Errorf("%s: FederationAllowed(%q) = %v, want %v", mode, tt.domain, got, want[i])
			}
		}
	}
}

func TestModes(t *testing.T) {
	tests := []struct {
		mode, want string
		allowed    bool // an unlisted domain
	}{
		{"", ModeOpen, true},
		{ModeOpen, ModeOpen, true},
		{ModeDenylist, ModeDenylist, true},
		{ModeAllowlist, ModeAllowlist, false},
		{ModePrivate, ModePrivate, false},
		{"Open", ModePrivate, false}, // a mistake closes, not opens
		{"allow-list", ModePrivate, false},
	}
	for _, tt := range tests {
		p, _ := newTest(&fakeStore{}, tt.mode, nil, nil)
		if got := p.Mode(); got != tt.want {
			t.Errorf("New(%q).Mode() = %q, want %q", tt.mode, got, tt.want)
		}
		if got := p.FederationAllowed(context.Background(), "x.example"); got != tt.allowed {
			t.Errorf("mode %q: FederationAllowed = %v, want %v", tt.mode, got, tt.allowed)
		}
		if got, want := ValidMode(tt.mode), tt.mode == tt.want; got != want {
			t.Errorf("ValidMode(%q) = %v, want %v", tt.mode, got, want)
		}
	}
}

// TestRulesRefresh checks that stored rules are read at most once a second,
// that a change shows within a second, and that a failing store keeps the
// last rules read.
func TestRulesRefresh(t *testing.T) {
	ctx := context.Background()
	st := &fakeStore{}
	p, clk := newTest(st, ModeOpen, nil, []string{"cfg.example"})
	steps := []struct {
		name      string
		advance   time.Duration
		change    func(s *fakeStore)
		domain    string
		want      bool
		wantReads int // total rule reads so far
	}{
		{"first check reads", 0, nil, "x.example", true, 1},
		{"config deny", 0, nil, "cfg.example", false, 1},
		{"deny stored", 0, func(s *fakeStore) { s.rules = map[string]string{"x.example": Deny} }, "x.example", true, 1},
		{"not yet", 999 * time.Millisecond, nil, "x.example", true, 1},
		{"a second later", time.Millisecond, nil, "x.example", false, 2},
		{"cached again", 500 * time.Millisecond, nil, "x.example", false, 2},
		{"store fails", time.Second, func(s *fakeStore) { s.err = errors.New("disk") }, "x.example", false, 3},
		{"failure not retried at once", 0, nil, "x.example", false, 3},
		{"retried a second later", time.Second, nil, "x.example", false, 4},
		{"store back, rule removed", time.Second, func(s *fakeStore) { s.err = nil; s.rules = nil }, "x.example", true, 5},
		{"clock went back", -time.Hour, nil, "x.example", true, 6},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.change != nil {
			st.set(s.change)
		}
		if got := p.FederationAllowed(ctx, s.domain); got != s.want {
			t.Errorf("%s: FederationAllowed(%q) = %v, want %v", s.name, s.domain, got, s.want)
		}
		if got, _ := st.reads(); got != s.wantReads {
			t.Errorf("%s: %d rule reads, want %d", s.name, got, s.wantReads)
		}
	}
}

func TestFirstReadFails(t *testing.T) {
	st := &fakeStore{err: errors.New("disk"), rules: map[string]string{"x.example": Deny}}
	p, clk := newTest(st, ModeOpen, nil, []string{"cfg.example"})
	ctx := context.Background()
	// The config file's rules hold until the stored ones can be read.
	if p.FederationAllowed(ctx, "cfg.example") {
		t.Error("config deny not applied while the store fails")
	}
	if !p.FederationAllowed(ctx, "x.example") {
		t.Error("stored rule applied without being read")
	}
	st.set(func(s *fakeStore) { s.err = nil })
	clk.Advance(time.Second)
	if p.FederationAllowed(ctx, "x.example") {
		t.Error("stored deny not applied once the store works")
	}
}

func TestLimited(t *testing.T) {
	ctx := context.Background()
	st := &fakeStore{roles: map[string]string{
		"alice": storage.RoleAdmin, "bob": storage.RoleMember, "eve": storage.RoleLimited,
	}}
	p, clk := newTest(st, ModeOpen, nil, nil)
	steps := []struct {
		name      string
		advance   time.Duration
		change    func(s *fakeStore)
		user      string
		want      bool
		wantReads int // total role reads so far
	}{
		{"admin", 0, nil, "alice", false, 1},
		{"member", 0, nil, "bob", false, 2},
		{"limited", 0, nil, "eve", true, 3},
		{"unknown", 0, nil, "zed", false, 4},
		{"cached", 0, nil, "eve", true, 4},
		{"unknown cached", 0, nil, "zed", false, 4},
		{"role changed, not yet seen", 500 * time.Millisecond,
			func(s *fakeStore) { s.roles["eve"] = storage.RoleMember; s.roles["bob"] = storage.RoleLimited }, "eve", true, 4},
		{"seen a second later", 500 * time.Millisecond, nil, "eve", false, 5},
		{"other user too", 0, nil, "bob", true, 6},
		{"store fails: last role read", time.Second, func(s *fakeStore) { s.err = errors.New("disk") }, "bob", true, 7},
		{"store fails: never read", 0, nil, "carol", false, 8},
		{"store back", 0, func(s *fakeStore) { s.err = nil }, "bob", true, 9},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.change != nil {
			st.set(s.change)
		}
		if got := p.Limited(ctx, s.user); got != s.want {
			t.Errorf("%s: Limited(%q) = %v, want %v", s.name, s.user, got, s.want)
		}
		if _, got := st.reads(); got != s.wantReads {
			t.Errorf("%s: %d role reads, want %d", s.name, got, s.wantReads)
		}
	}
	// Stale entries are forgotten: after a quiet second, checking one user
	// leaves only that user cached.
	clk.Advance(2 * time.Second)
	p.Limited(ctx, "alice")
	p.rolesMu.Lock()
	n := len(p.roles)
	p.rolesMu.Unlock()
	if n != 1 {
		t.Errorf("%d roles cached, want 1", n)
	}
}

// TestConcurrent runs checks from many goroutines while the clock moves and
// the rules change; run with -race.
func TestConcurrent(t *testing.T) {
	st := &fakeStore{rules: map[string]string{}, roles: map[string]string{"eve": storage.RoleLimited}}
	p, clk := newTest(st, ModeDenylist, nil, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p.FederationAllowed(ctx, fmt.Sprintf("d%d.example", i%7))
				p.Limited(ctx, []string{"eve", "bob"}[(g+i)%2])
				if g == 0 && i%10 == 0 {
					clk.Advance(300 * time.Millisecond)
					st.set(func(s *fakeStore) { s.rules[fmt.Sprintf("d%d.example", i%7)] = Deny })
				}
			}
		})
	}
	wg.Wait()
	clk.Advance(time.Second)
	if p.FederationAllowed(ctx, "d0.example") {
		t.Error("d0.example allowed after its deny rule was read")
	}
	if !p.Limited(ctx, "eve") {
		t.Error("eve not limited")
	}
}

func TestMergeRules(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		stored      map[string]string
		want        []Rule
	}{
		{"none", nil, nil, nil, []Rule{}},
		{"config only", []string{"b.example"}, []string{"a.example"}, nil, []Rule{
			{Domain: "a.example", Action: Deny, Origin: OriginConfig},
			{Domain: "b.example", Action: Allow, Origin: OriginConfig},
		}},
		{"deny wins within the config", []string{"a.example"}, []string{"a.example"}, nil, []Rule{
			{Domain: "a.example", Action: Deny, Origin: OriginConfig},
		}},
		{"stored overrides config", []string{"a.example", "b.example"}, nil,
			map[string]string{"a.example": Deny, "b.example": Allow, "c.example": Deny}, []Rule{
				{Domain: "a.example", Action: Deny, Origin: OriginAdmin, Config: Allow},
				{Domain: "b.example", Action: Allow, Origin: OriginAdmin},
				{Domain: "c.example", Action: Deny, Origin: OriginAdmin},
			}},
	}
	for _, tt := range tests {
		if got := MergeRules(tt.allow, tt.deny, tt.stored); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: MergeRules = %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

// BenchmarkFederationAllowed measures the check on the stanza path, with
// the rules cached.
func BenchmarkFederationAllowed(b *testing.B) {
	rules := map[string]string{}
	for i := range 1000 {
		rules[fmt.Sprintf("d%d.example", i)] = Deny
	}
	p, _ := newTest(&fakeStore{rules: rules}, ModeOpen, nil, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if !p.FederationAllowed(ctx, "muc.chat.other.example") {
			b.Fatal("denied")
		}
	}
}

func TestRules(t *testing.T) {
	st := &fakeStore{rules: map[string]string{"a.example": Deny}}
	p, _ := newTest(st, ModeOpen, []string{"A.Example.", "b.example"}, nil)
	got, err := p.Rules(context.Background())
	want := []Rule{
		{Domain: "a.example", Action: Deny, Origin: OriginAdmin, Config: Allow},
		{Domain: "b.example", Action: Allow, Origin: OriginConfig},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Rules = %+v, %v\nwant %+v", got, err, want)
	}
	st.set(func(s *fakeStore) { s.err = errors.New("disk") })
	if _, err := p.Rules(context.Background()); err == nil {
		t.Error("Rules with a failing store succeeded")
	}
}
