package roster

import (
	"slices"
	"testing"

	"casp3r/internal/storage"
)

// subscribe stores the mutual items of a subscription where sub's user has
// state sub (to/from/both) toward contact.
func (e *env) subscribe(user, contact, sub string) {
	e.t.Helper()
	e.put(user, storage.RosterItem{JID: contact, Subscription: sub})
}

// TestInitialPresence checks the broadcast of initial presence (RFC 6121
// §4.2): to subscribers and own resources, probes to the contacts the user
// is subscribed to, the other resources' presence to the new one, and the
// hooks.
func TestInitialPresence(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	e.subscribe("alice", "bob@example.com", storage.SubBoth)
	e.subscribe("bob", "alice@example.com", storage.SubBoth)
	e.subscribe("alice", "carol@remote.example", storage.SubFrom) // carol sees alice
	e.subscribe("alice", "dave@remote.example", storage.SubTo)    // alice sees dave
	e.subscribe("alice", "erin@remote.example", storage.SubNone)

	b := e.login("bob", "laptop", true)
	a1 := e.login("alice", "phone", true)
	e.hook.got = nil
	b.s.Take()
	e.remote.take()

	a2 := e.login("alice", "tablet", false)
	a2.send(`<presence><priority>5</priority></presence>`)
	a1f, a2f := a1.jid.String(), a2.jid.String()
	expect(t, "new resource", a2.s.Take(),
		"presence available "+a2f+" > "+a2f,                         // own broadcast
		"presence available "+a1f+" > "+a2f,                         // the other resource
		"presence available "+b.jid.String()+" > alice@example.com", // bob, probed
	)
	expect(t, "other resource", a1.s.Take(),
		"presence available "+a2f+" > "+a1f,
		"presence available "+b.jid.String()+" > alice@example.com", // the probe's answer goes to the bare JID
	)
	expect(t, "bob", b.s.Take(), "presence available "+a2f+" > bob@example.com")
	expect(t, "remote", e.remote.take(),
		"presence available "+a2f+" > carol@remote.example",
		"presence probe alice@example.com > dave@remote.example",
	)
	if want := []string{a2f}; !slices.Equal(e.hook.got, want) {
		t.Errorf("hooks got %v, want %v", e.hook.got, want)
	}
	res, _ := e.r.Lookup(a2.jid)
	if !res.Available || res.Priority != 5 || res.Presence == nil || res.Presence.Get("to") != "" {
		t.Errorf("stored state %+v", res)
	}

	// Subsequent presence: broadcast again, no probes, no hooks.
	e.hook.got = nil
	a2.send(`<presence><show>dnd</show></presence>`)
	expect(t, "bob", b.s.Take(), "presence available "+a2f+" > bob@example.com")
	expect(t, "remote", e.remote.take(), "presence available "+a2f+" > carol@remote.example")
	expect(t, "other resource", a1.s.Take(), "presence available "+a2f+" > "+a1f)
	expect(t, "self", a2.s.Take(), "presence available "+a2f+" > "+a2f)
	if len(e.hook.got) != 0 {
		t.Errorf("hooks called on subsequent presence: %v", e.hook.got)
	}
	if res, _ := e.r.Lookup(a2.jid); res.Presence.Child("", "show").Text() != "dnd" || res.Priority != 0 {
		t.Errorf("stored presence %s priority %d", res.Presence, res.Priority)
	}
}

// TestProbe checks that a probe is answered only when the prober is
// subscribed (RFC 6121 §4.3.2).
func TestProbe(t *testing.T) {
	e := newEnv(t, "alice")
	e.subscribe("alice", "sub@remote.example", storage.SubFrom)
	e.subscribe("alice", "both@remote.example", storage.SubBoth)
	e.subscribe("alice", "to@remote.example", storage.SubTo)
	e.put("alice", storage.RosterItem{JID: "pending@remote.example", Subscription: storage.SubNone, PendingIn: true, Hidden: true})
	probe := func(from, to string) {
		e.inject(`<presence type='probe' from='` + from + `' to='` + to + `'/>`)
	}

	// No resource available: unavailable from the bare JID.
	probe("sub@remote.example", "alice@example.com")
	expect(t, "offline", e.remote.take(), "presence unavailable alice@example.com > sub@remote.example")

	a := e.login("alice", "phone", true)
	a2 := e.login("alice", "idle", false) // bound, never available
	e.remote.take()
	tests := []struct {
		from string
		want string
	}{
		{"sub@remote.example", "presence available " + a.jid.String() + " > sub@remote.example"},
		{"both@remote.example/res", "presence available " + a.jid.String() + " > both@remote.example/res"},
		{"to@remote.example", "presence unsubscribed alice@example.com > to@remote.example"},
		{"pending@remote.example", "presence unsubscribed alice@example.com > pending@remote.example"},
		{"stranger@remote.example", "presence unsubscribed alice@example.com > stranger@remote.example"},
	}
	for _, tt := range tests {
		probe(tt.from, "alice@example.com")
		expect(t, tt.from, e.remote.take(), tt.want)
	}
	expect(t, "prober's user", a.s.Take())
	expect(t, "idle resource", a2.s.Take())

	// A probe to an account that does not exist is answered as one from a
	// non-subscriber.
	probe("sub@remote.example", "nobody@example.com")
	expect(t, "no account", e.remote.take(), "presence unsubscribed nobody@example.com > sub@remote.example")
}

// TestProbeLocal checks probes between local users: the answer depends on
// the contact's view of the subscription, and an unsubscribed answer
// repairs a user who thinks it is subscribed.
func TestProbeLocal(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	e.subscribe("alice", "bob@example.com", storage.SubTo) // alice thinks she sees bob
	b := e.login("bob", "laptop", true)                    // but bob has no item for her
	a := e.login("alice", "phone", false)
	a.send(`<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>`)
	a.s.Take()
	a.send(`<presence/>`)
	expect(t, "alice", a.s.Take(),
		"presence available "+a.jid.String()+" > "+a.jid.String(),
		"push bob@example.com none > "+a.jid.String(),
		"presence unsubscribed bob@example.com > alice@example.com")
	expect(t, "bob", b.s.Take())
}

// TestUnavailable checks the unavailable broadcast, explicit and when the
// session ends (RFC 6121 §4.5).
func TestUnavailable(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	e.subscribe("alice", "bob@example.com", storage.SubBoth)
	e.subscribe("bob", "alice@example.com", storage.SubBoth)
	e.subscribe("alice", "carol@remote.example", storage.SubFrom)
	e.subscribe("alice", "dave@remote.example", storage.SubTo)
	b := e.login("bob", "laptop", true)
	a1 := e.login("alice", "phone", true)
	a2 := e.login("alice", "tablet", true)
	a1.s.Take()
	b.s.Take()
	e.remote.take()
	a1f, a2f := a1.jid.String(), a2.jid.String()

	a1.send(`<presence type='unavailable'><status>bye</status></presence>`)
	expect(t, "bob", b.s.Take(), "presence unavailable "+a1f+" > bob@example.com")
	expect(t, "remote", e.remote.take(), "presence unavailable "+a1f+" > carol@remote.example")
	expect(t, "other resource", a2.s.Take(), "presence unavailable "+a1f+" > "+a2f)
	expect(t, "self", a1.s.Take())
	if res, _ := e.r.Lookup(a1.jid); res.Available || res.Presence != nil {
		t.Errorf("still available: %+v", res)
	}

	// A second unavailable, and the end of an unavailable session, say
	// nothing more.
	a1.send(`<presence type='unavailable'/>`)
	a1.logout()
	expect(t, "bob again", b.s.Take())
	expect(t, "remote again", e.remote.take())

	// The end of an available session is broadcast as unavailable.
	a2.logout()
	expect(t, "bob", b.s.Take(), "presence unavailable "+a2f+" > bob@example.com")
	expect(t, "remote", e.remote.take(), "presence unavailable "+a2f+" > carol@remote.example")
	expect(t, "ended session", a2.s.Take())
}

// TestDirectedPresence checks that directed presence is routed, and that
// the entities that got available presence outside the broadcast are told
// when the resource goes unavailable (RFC 6121 §4.6).
func TestDirectedPresence(t *testing.T) {
	e := newEnv(t, "alice")
	e.subscribe("alice", "carol@remote.example", storage.SubFrom)
	e.subscribe("alice", "dave@remote.example", storage.SubTo)

	t.Run("explicit unavailable", func(t *testing.T) {
		e.t = t
		a := e.login("alice", "phone", true)
		e.remote.take()
		a.send(`<presence to='room@muc.remote.example/alice'/>`)
		a.send(`<presence to='carol@remote.example'><show>chat</show></presence>`)
		a.send(`<presence to='dave@remote.example'/>`)
		a.send(`<presence to='gone@remote.example'/>`)
		a.send(`<presence to='gone@remote.example' type='unavailable'/>`)
		af := a.jid.String()
		expect(t, "directed", e.remote.take(),
			"presence available "+af+" > room@muc.remote.example/alice",
			"presence available "+af+" > carol@remote.example",
			"presence available "+af+" > dave@remote.example",
			"presence available "+af+" > gone@remote.example",
			"presence unavailable "+af+" > gone@remote.example")

		a.send(`<presence type='unavailable'/>`)
		expect(t, "unavailable", e.remote.take(),
			"presence unavailable "+af+" > carol@remote.example", // subscriber, once
			"presence unavailable "+af+" > room@muc.remote.example/alice",
			"presence unavailable "+af+" > dave@remote.example")
		a.logout()
		expect(t, "after logout", e.remote.take())
	})

	t.Run("session end", func(t *testing.T) {
		e.t = t
		a := e.login("alice", "laptop", true)
		e.remote.take()
		a.send(`<presence to='room@muc.remote.example/alice'/>`)
		e.remote.take()
		a.logout()
		af := a.jid.String()
		expect(t, "ended", e.remote.take(),
			"presence unavailable "+af+" > carol@remote.example",
			"presence unavailable "+af+" > room@muc.remote.example/alice")
	})

	t.Run("before initial presence", func(t *testing.T) {
		e.t = t
		a := e.login("alice", "pc", false)
		a.send(`<presence to='room@muc.remote.example/alice'/>`)
		e.remote.take()
		a.logout()
		expect(t, "ended", e.remote.take(),
			"presence unavailable "+a.jid.String()+" > room@muc.remote.example/alice")
	})
}

// TestInboundDelivery checks where presence addressed to a local account
// goes (RFC 6121 §8.5).
func TestInboundDelivery(t *testing.T) {
	e := newEnv(t, "alice")
	a1 := e.login("alice", "phone", true)
	a2 := e.login("alice", "tablet", true)
	idle := e.login("alice", "idle", false)
	a1.s.Take()
	a2.s.Take()

	e.inject(`<presence from='carol@remote.example/x' to='alice@example.com'/>`)
	expect(t, "bare: phone", a1.s.Take(), "presence available carol@remote.example/x > alice@example.com")
	expect(t, "bare: tablet", a2.s.Take(), "presence available carol@remote.example/x > alice@example.com")
	expect(t, "bare: idle", idle.s.Take())

	e.inject(`<presence from='carol@remote.example/x' to='` + a2.jid.String() + `' type='unavailable'/>`)
	expect(t, "full: phone", a1.s.Take())
	expect(t, "full: tablet", a2.s.Take(), "presence unavailable carol@remote.example/x > "+a2.jid.String())

	e.inject(`<presence from='carol@remote.example/x' to='alice@example.com/nothere'/>`)
	e.inject(`<presence from='carol@remote.example/x' to='nobody@example.com'/>`)
	expect(t, "nowhere: phone", a1.s.Take())
	expect(t, "nowhere: tablet", a2.s.Take())
	expect(t, "nowhere: remote", e.remote.take())

	e.inject(`<presence from='carol@remote.example/x' to='alice@example.com' type='bogus'/>`)
	expect(t, "bogus type bounced", e.remote.take(), "presence error alice@example.com > carol@remote.example/x")
}

// TestOutboundErrors checks the presence a client may not send.
func TestOutboundErrors(t *testing.T) {
	e := newEnv(t, "alice")
	a := e.login("alice", "phone", true)
	for _, raw := range []string{
		`<presence type='subscribe'/>`,
		`<presence type='bogus'/>`,
		`<presence type='probe'/>`,
	} {
		a.send(raw)
		expect(t, raw, a.s.Take(), "presence error example.com > "+a.jid.String())
	}
	// Subscribing to oneself does nothing.
	a.send(`<presence type='subscribe' to='alice@example.com'/>`)
	expect(t, "self", a.s.Take())
	if _, ok := e.item("alice", "alice@example.com"); ok {
		t.Error("self item stored")
	}
}
