package router_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/xmlstream"
)

// standIn is a resource on another node: Forward succeeds or fails as set.
type standIn struct {
	*routertest.Session
	mu        sync.Mutex
	fail      bool
	forwarded []string
}

func (s *standIn) Forward(_ context.Context, st *xmlstream.Element) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("node unreachable")
	}
	s.forwarded = append(s.forwarded, st.Child("", "body").Text())
	return nil
}

// observed records what the router tells its observer.
type observed struct {
	mu     sync.Mutex
	events []string
}

func (o *observed) ResourceChanged(res router.Resource, directed []jid.JID, gone bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ev := res.JID.String()
	switch {
	case gone:
		ev += " gone"
	case res.Available:
		ev += " available"
	default:
		ev += " bound"
	}
	for _, j := range directed {
		ev += " +" + j.String()
	}
	o.events = append(o.events, ev)
}

// TestRemoteResources checks delivery to resources bound on another node of
// a cluster: messages are forwarded, a failed forward falls back to offline
// storage, a remote resource never displaces a local one, and only local
// changes reach the observer.
func TestRemoteResources(t *testing.T) {
	tests := []struct {
		name        string
		fail        bool
		local       bool // bob also has an available local resource "pc"
		to          string
		wantForward []string
		wantOffline []string
	}{
		{"bare to remote", false, false, "bob@x.test", []string{"hi"}, nil},
		{"full to remote", false, false, "bob@x.test/phone", []string{"hi"}, nil},
		{"remote node dead: stored offline", true, false, "bob@x.test", nil, []string{"bob:hi"}},
		{"full to dead remote: stored offline", true, false, "bob@x.test/phone", nil, []string{"bob:hi"}},
		{"dead remote but local resource", true, true, "bob@x.test", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			off := &recordingOffline{}
			obs := &observed{}
			r := routertest.NewRouter(router.Config{
				Domain:   jid.MustParse("x.test"),
				Offline:  off,
				Accounts: routertest.Accounts{"alice": true, "bob": true},
			})
			r.SetObserver(obs)
			alice := routertest.Bind(t, r, "alice@x.test/pc")
			full := jid.MustParse("bob@x.test/phone")
			st := &standIn{Session: routertest.NewSession(full), fail: tc.fail}
			r.PutRemote(router.Resource{Session: st, JID: full, Available: true, Node: "b"})
			var local *routertest.Session
			if tc.local {
				local = routertest.Bind(t, r, "bob@x.test/pc")
				r.SetPresence(local.JID(), xmlstream.New(xmlstream.NSClient, "presence"), 0)
			}
			r.Route(context.Background(), msg("alice@x.test/pc", tc.to, "chat", "hi"))
			if got, want := st.forwarded, tc.wantForward; !equal(got, want) {
				t.Errorf("forwarded %q, want %q", got, want)
			}
			if got, want := off.stored, tc.wantOffline; !equal(got, want) {
				t.Errorf("stored offline %q, want %q", got, want)
			}
			if local != nil {
				if got := len(local.Take()); got != 1 {
					t.Errorf("local resource got %d stanzas, want 1", got)
				}
			}
			if got := alice.Take(); len(got) != 0 {
				t.Errorf("sender got %v, want nothing (no bounce)", got)
			}
			if got, want := r.SessionCount(), 1+btoi(tc.local); got != want {
				t.Errorf("SessionCount = %d, want %d (local only)", got, want)
			}
			for _, ev := range obs.events {
				if ev == "bob@x.test/phone bound" || ev == "bob@x.test/phone available" {
					t.Errorf("observer told of the remote resource: %q", ev)
				}
			}
		})
	}
}

func TestRemoteResourceLifecycle(t *testing.T) {
	r := routertest.NewRouter(router.Config{
		Domain:   jid.MustParse("x.test"),
		Offline:  &recordingOffline{},
		Accounts: routertest.Accounts{"bob": true},
	})
	obs := &observed{}
	r.SetObserver(obs)
	full := jid.MustParse("bob@x.test/pc")
	local := routertest.Bind(t, r, full.String())
	r.SetPresence(full, xmlstream.New(xmlstream.NSClient, "presence"), 0)

	// Another node claims the same full JID: this node keeps its session.
	r.PutRemote(router.Resource{Session: routertest.NewSession(full), JID: full, Node: "b"})
	if res, ok := r.Lookup(full); !ok || res.Node != "" {
		t.Fatalf("Lookup(%s) = %+v, %v; want the local session", full, res, ok)
	}
	if _, ok := r.RemoveRemote(full, "b"); ok {
		t.Errorf("RemoveRemote removed the local session")
	}
	if !r.DeliverLocal(full, msg("a@x.test", full.String(), "chat", "x")) || len(local.Take()) != 1 {
		t.Errorf("DeliverLocal did not reach the local session")
	}

	other := jid.MustParse("bob@x.test/phone")
	r.PutRemote(router.Resource{Session: routertest.NewSession(other), JID: other, Node: "b", Available: true})
	if got := len(r.Resources(full.Bare())); got != 2 {
		t.Errorf("Resources = %d, want 2 (local + remote)", got)
	}
	if r.DeliverLocal(other, msg("a@x.test", other.String(), "chat", "x")) {
		t.Errorf("DeliverLocal delivered to a remote resource")
	}
	if _, ok := r.RemoveRemote(other, "c"); ok {
		t.Errorf("RemoveRemote with the wrong node removed it")
	}
	if _, ok := r.RemoveRemote(other, "b"); !ok {
		t.Errorf("RemoveRemote(b) found nothing")
	}
	// Directed presence reaches the observer; the same once, and its end.
	carol := jid.MustParse("carol@y.test/desk")
	r.SetDirected(full, carol, true)
	r.SetDirected(full, carol, true)
	r.SetInterested(full)
	r.SetInterested(full)
	r.SetDirected(full, carol, false)
	r.EndSession(context.Background(), local)
	want := []string{"bob@x.test/pc bound", "bob@x.test/pc available", "bob@x.test/pc available +carol@y.test/desk",
		"bob@x.test/pc available +carol@y.test/desk", "bob@x.test/pc available", "bob@x.test/pc gone"}
	if !equal(obs.events, want) {
		t.Errorf("observer events %q, want %q", obs.events, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
