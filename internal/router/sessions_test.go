package router_test

import (
	"slices"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
)

// TestSessionTable: binding, replacing and unbinding resources of one
// account, as clients log in, reconnect and leave.
func TestSessionTable(t *testing.T) {
	r := routertest.NewRouter(router.Config{Domain: jid.MustParse("x.test")})
	bob := jid.MustParse("bob@x.test")
	resources := func() []string {
		var out []string
		for _, res := range r.Resources(bob) {
			out = append(out, res.JID.Resource())
		}
		slices.Sort(out)
		return out
	}
	check := func(step string, want ...string) {
		t.Helper()
		if got := resources(); !slices.Equal(got, want) {
			t.Errorf("%s: bob's resources = %q, want %q", step, got, want)
		}
		if got := r.SessionCount(); got != len(want) {
			t.Errorf("%s: SessionCount = %d, want %d", step, got, len(want))
		}
	}

	phone := routertest.Bind(t, r, "bob@x.test/phone")
	pc := routertest.Bind(t, r, "bob@x.test/pc")
	tablet := routertest.Bind(t, r, "bob@x.test/tablet")
	check("three bound", "pc", "phone", "tablet")

	// The phone reconnects: the new session takes the resource, the old
	// one is closed with conflict and can no longer unbind it.
	phone2 := routertest.Bind(t, r, "bob@x.test/phone")
	if se := phone.Closed(); se == nil || se.Condition != "conflict" {
		t.Errorf("replaced session closed with %v, want conflict", se)
	}
	check("phone replaced", "pc", "phone", "tablet")
	if res, ok := r.Lookup(jid.MustParse("bob@x.test/phone")); !ok || res.Session != phone2 {
		t.Errorf("Lookup(phone) = %v, %v; want the new session", res.Session, ok)
	}
	if _, _, ok := r.Unbind(phone); ok {
		t.Error("the replaced session unbound the resource of its successor")
	}
	check("replaced session gone", "pc", "phone", "tablet")

	for _, s := range []*routertest.Session{pc, phone2} {
		if _, _, ok := r.Unbind(s); !ok {
			t.Errorf("Unbind(%s) = false", s.JID())
		}
	}
	check("two left", "tablet")
	if _, ok := r.Lookup(jid.MustParse("bob@x.test/pc")); ok {
		t.Error("pc still found after it left")
	}
	if _, _, ok := r.Unbind(tablet); !ok {
		t.Error("Unbind(tablet) = false")
	}
	check("all left")
	// The account comes back after it was emptied.
	routertest.Bind(t, r, "bob@x.test/pc")
	check("back", "pc")
}
