package roster

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"casp3r/internal/storage"
	"casp3r/internal/xmlstream"
)

// parseState reads a state named as in RFC 6121 Appendix A ("None",
// "None+Out", "From+Out", "To+In", …), with "+Approved" for a pre-approval.
func parseState(t *testing.T, name string) subState {
	t.Helper()
	var s subState
	for _, part := range strings.Split(name, "+") {
		switch part {
		case "None":
		case "To":
			s.to = true
		case "From":
			s.from = true
		case "Both":
			s.to, s.from = true, true
		case "Out":
			s.out = true
		case "In":
			s.in = true
		case "Approved":
			s.approved = true
		default:
			t.Fatalf("bad state %q", name)
		}
	}
	return s
}

// transitionRow is one row of RFC 6121 Appendix A: the user's item for the
// contact is in state from; the user sends (dir "out", A.2) or receives
// (dir "in", A.3) a stanza of type typ; the item ends in state to, the
// contact is sent the presence types in routed, and, inbound, the stanza
// is delivered to the user's client if deliver.
type transitionRow struct {
	dir, from, typ, to string
	routed             string
	deliver            bool
}

var transitionRows = []transitionRow{
	// A.2.1 outbound subscribe: always routed.
	{"out", "None", "subscribe", "None+Out", "subscribe", false},
	{"out", "None+Out", "subscribe", "None+Out", "subscribe", false},
	{"out", "None+In", "subscribe", "None+Out+In", "subscribe", false},
	{"out", "None+Out+In", "subscribe", "None+Out+In", "subscribe", false},
	{"out", "To", "subscribe", "To", "subscribe", false},
	{"out", "To+In", "subscribe", "To+In", "subscribe", false},
	{"out", "From", "subscribe", "From+Out", "subscribe", false},
	{"out", "From+Out", "subscribe", "From+Out", "subscribe", false},
	{"out", "Both", "subscribe", "Both", "subscribe", false},
	// A.2.2 outbound unsubscribe: always routed.
	{"out", "None", "unsubscribe", "None", "unsubscribe", false},
	{"out", "None+Out", "unsubscribe", "None", "unsubscribe", false},
	{"out", "None+In", "unsubscribe", "None+In", "unsubscribe", false},
	{"out", "None+Out+In", "unsubscribe", "None+In", "unsubscribe", false},
	{"out", "To", "unsubscribe", "None", "unsubscribe", false},
	{"out", "To+In", "unsubscribe", "None+In", "unsubscribe", false},
	{"out", "From", "unsubscribe", "From", "unsubscribe", false},
	{"out", "From+Out", "unsubscribe", "From", "unsubscribe", false},
	{"out", "Both", "unsubscribe", "From", "unsubscribe", false},
	// A.2.3 outbound subscribed: routed (with the user's presence) only
	// when it approves a pending request; else a pre-approval (§3.4).
	{"out", "None", "subscribed", "None+Approved", "", false},
	{"out", "None+Out", "subscribed", "None+Out+Approved", "", false},
	{"out", "None+In", "subscribed", "From", "subscribed available", false},
	{"out", "None+Out+In", "subscribed", "From+Out", "subscribed available", false},
	{"out", "To", "subscribed", "To+Approved", "", false},
	{"out", "To+In", "subscribed", "Both", "subscribed available", false},
	{"out", "From", "subscribed", "From", "", false},
	{"out", "From+Out", "subscribed", "From+Out", "", false},
	{"out", "Both", "subscribed", "Both", "", false},
	// A.2.4 outbound unsubscribed: routed; a cancelled subscription is
	// followed by unavailable presence.
	{"out", "None", "unsubscribed", "None", "unsubscribed", false},
	{"out", "None+Out", "unsubscribed", "None+Out", "unsubscribed", false},
	{"out", "None+In", "unsubscribed", "None", "unsubscribed", false},
	{"out", "None+Out+In", "unsubscribed", "None+Out", "unsubscribed", false},
	{"out", "To", "unsubscribed", "To", "unsubscribed", false},
	{"out", "To+In", "unsubscribed", "To", "unsubscribed", false},
	{"out", "From", "unsubscribed", "None", "unsubscribed unavailable", false},
	{"out", "From+Out", "unsubscribed", "None+Out", "unsubscribed unavailable", false},
	{"out", "Both", "unsubscribed", "To", "unsubscribed unavailable", false},
	{"out", "None+Approved", "unsubscribed", "None", "", false},
	{"out", "To+Approved", "unsubscribed", "To", "", false},

	// A.3.1 inbound subscribe: kept pending and delivered, or answered
	// for the user when already subscribed or pre-approved.
	{"in", "None", "subscribe", "None+In", "", true},
	{"in", "None+Out", "subscribe", "None+Out+In", "", true},
	{"in", "None+In", "subscribe", "None+In", "", true},
	{"in", "None+Out+In", "subscribe", "None+Out+In", "", true},
	{"in", "To", "subscribe", "To+In", "", true},
	{"in", "To+In", "subscribe", "To+In", "", true},
	{"in", "From", "subscribe", "From", "subscribed available", false},
	{"in", "From+Out", "subscribe", "From+Out", "subscribed available", false},
	{"in", "Both", "subscribe", "Both", "subscribed available", false},
	{"in", "None+Approved", "subscribe", "From", "subscribed available", false},
	{"in", "None+Out+Approved", "subscribe", "From+Out", "subscribed available", false},
	{"in", "To+Approved", "subscribe", "Both", "subscribed available", false},
	// A.3.2 inbound unsubscribe.
	{"in", "None", "unsubscribe", "None", "", false},
	{"in", "None+Out", "unsubscribe", "None+Out", "", false},
	{"in", "None+In", "unsubscribe", "None", "", true},
	{"in", "None+Out+In", "unsubscribe", "None+Out", "", true},
	{"in", "To", "unsubscribe", "To", "", false},
	{"in", "To+In", "unsubscribe", "To", "", true},
	{"in", "From", "unsubscribe", "None", "unavailable", true},
	{"in", "From+Out", "unsubscribe", "None+Out", "unavailable", true},
	{"in", "Both", "unsubscribe", "To", "unavailable", true},
	// A.3.3 inbound subscribed.
	{"in", "None", "subscribed", "None", "", false},
	{"in", "None+Out", "subscribed", "To", "", true},
	{"in", "None+In", "subscribed", "None+In", "", false},
	{"in", "None+Out+In", "subscribed", "To+In", "", true},
	{"in", "To", "subscribed", "To", "", false},
	{"in", "To+In", "subscribed", "To+In", "", false},
	{"in", "From", "subscribed", "From", "", false},
	{"in", "From+Out", "subscribed", "Both", "", true},
	{"in", "Both", "subscribed", "Both", "", false},
	// A.3.4 inbound unsubscribed.
	{"in", "None", "unsubscribed", "None", "", false},
	{"in", "None+Out", "unsubscribed", "None", "", true},
	{"in", "None+In", "unsubscribed", "None+In", "", false},
	{"in", "None+Out+In", "unsubscribed", "None+In", "", true},
	{"in", "To", "unsubscribed", "None", "", true},
	{"in", "To+In", "unsubscribed", "None+In", "", true},
	{"in", "From", "unsubscribed", "From", "", false},
	{"in", "From+Out", "unsubscribed", "From", "", true},
	{"in", "Both", "unsubscribed", "From", "", true},
}

// TestTransitionTable checks the pure state functions against Appendix A.
func TestTransitionTable(t *testing.T) {
	for _, tt := range transitionRows {
		t.Run(tt.dir+" "+tt.typ+" "+tt.from, func(t *testing.T) {
			from := parseState(t, tt.from)
			var got subState
			if tt.dir == "out" {
				got = outbound(from, tt.typ)
			} else {
				got = inbound(from, tt.typ)
			}
			if want := parseState(t, tt.to); got != want {
				t.Errorf("got %+v, want %s %+v", got, tt.to, want)
			}
		})
	}
}

// TestTransitions runs every row of Appendix A through the router and the
// store, with the contact on a remote server: the stored state, the roster
// push, what reaches the contact and what reaches the user's client.
func TestTransitions(t *testing.T) {
	e := newEnv(t, "alice")
	alice := e.login("alice", "phone", true)
	const bare = "alice@" + domain
	for i, tt := range transitionRows {
		contact := fmt.Sprintf("c%d@remote.example", i)
		t.Run(tt.dir+" "+tt.typ+" "+tt.from, func(t *testing.T) {
			e.t = t
			before := parseState(t, tt.from)
			it := storage.RosterItem{JID: contact}
			before.setOn(&it)
			e.put("alice", it)
			alice.s.Take()
			e.remote.take()

			if tt.dir == "out" {
				alice.send(fmt.Sprintf(`<presence to='%s' type='%s'/>`, contact, tt.typ))
			} else {
				e.inject(fmt.Sprintf(`<presence from='%s/x' to='%s' type='%s'/>`, contact, bare, tt.typ))
			}

			after := parseState(t, tt.to)
			got, ok := e.item("alice", contact)
			if !ok {
				t.Fatalf("item gone, want %s", tt.to)
			}
			if gs := stateOf(&got); gs != after {
				t.Errorf("state %+v, want %s", gs, tt.to)
			}
			if got.Hidden {
				t.Error("item became hidden")
			}

			var routed []string
			for _, typ := range strings.Fields(tt.routed) {
				from := bare
				if typ == "available" || typ == "unavailable" {
					from = alice.jid.String()
				}
				routed = append(routed, "presence "+typ+" "+from+" > "+contact)
			}
			expect(t, "contact", e.remote.take(), routed...)

			var delivered []string
			if before.shown() != after.shown() {
				var pushed storage.RosterItem
				after.setOn(&pushed)
				d := "push " + contact + " " + pushed.Subscription
				if after.out {
					d += " ask"
				}
				if after.approved {
					d += " approved"
				}
				delivered = append(delivered, d+" > "+alice.jid.String())
			}
			if tt.deliver {
				delivered = append(delivered, "presence "+tt.typ+" "+contact+" > "+bare)
			}
			expect(t, "user", alice.s.Take(), delivered...)
		})
	}
}

// TestHandshake runs the full mutual subscription between two local users:
// A subscribes to B, B approves, B subscribes back, A approves.
func TestHandshake(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	a := e.login("alice", "phone", true)
	b := e.login("bob", "laptop", true)
	const aj, bj = "alice@example.com", "bob@example.com"
	af, bf := a.jid.String(), b.jid.String()

	steps := []struct {
		name  string
		by    *client
		send  string
		wantA []string
		wantB []string
	}{
		{"A subscribes", a, `<presence to='bob@example.com' type='subscribe'/>`,
			[]string{"push " + bj + " none ask > " + af},
			[]string{"presence subscribe " + aj + " > " + bj}},
		{"B approves", b, `<presence to='alice@example.com' type='subscribed'/>`,
			[]string{
				"push " + bj + " to > " + af,
				"presence subscribed " + bj + " > " + aj,
				"presence available " + bf + " > " + aj,
			},
			[]string{"push " + aj + " from > " + bf}},
		{"B subscribes", b, `<presence to='alice@example.com' type='subscribe'/>`,
			[]string{"presence subscribe " + bj + " > " + aj},
			[]string{"push " + aj + " from ask > " + bf}},
		{"A approves", a, `<presence to='bob@example.com' type='subscribed'/>`,
			[]string{"push " + bj + " both > " + af},
			[]string{
				"push " + aj + " both > " + bf,
				"presence subscribed " + aj + " > " + bj,
				"presence available " + af + " > " + bj,
			}},
	}
	for _, st := range steps {
		st.by.send(st.send)
		expect(t, st.name+": alice", a.s.Take(), st.wantA...)
		expect(t, st.name+": bob", b.s.Take(), st.wantB...)
	}
	for _, c := range [][2]string{{"alice", bj}, {"bob", aj}} {
		it, ok := e.item(c[0], c[1])
		if !ok || it.Subscription != storage.SubBoth || it.Ask || it.PendingIn || it.Hidden {
			t.Errorf("%s's item for %s = %+v, want both", c[0], c[1], it)
		}
	}
	if got := e.remote.take(); len(got) != 0 {
		t.Errorf("routed remotely: %v", describeAll(got))
	}

	// Now subscribed both ways, presence flows both ways.
	a.send(`<presence><show>away</show></presence>`)
	expect(t, "bob", b.s.Take(), "presence available "+af+" > "+bj)
	expect(t, "alice", a.s.Take(), "presence available "+af+" > "+af)

	// A cancels B's subscription: B is told, and sees A go offline.
	a.send(`<presence to='bob@example.com' type='unsubscribed'/>`)
	expect(t, "alice", a.s.Take(), "push "+bj+" to > "+af)
	expect(t, "bob", b.s.Take(),
		"push "+aj+" from > "+bf,
		"presence unsubscribed "+aj+" > "+bj,
		"presence unavailable "+af+" > "+bj)
}

// TestPendingIn checks that a request from someone the user never added is
// kept hidden, delivered again at each initial presence, and becomes a
// visible item once the user approves it.
func TestPendingIn(t *testing.T) {
	e := newEnv(t, "alice")
	const bare = "alice@example.com"
	e.inject(`<presence from='carol@remote.example/x' to='alice@example.com' type='subscribe'><status>hi</status></presence>`)
	it, ok := e.item("alice", "carol@remote.example")
	if !ok || !it.Hidden || !it.PendingIn || it.Subscription != storage.SubNone {
		t.Fatalf("stored %+v, want hidden pending-in", it)
	}

	// A resource that has not requested the roster is not asked.
	a := e.login("alice", "phone", false)
	e.inject(`<presence from='carol@remote.example' to='alice@example.com' type='subscribe'/>`)
	expect(t, "before roster get", a.s.Take())

	a.send(`<iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>`)
	got := a.s.Take()
	if len(got) != 1 || got[0].Get("type") != "result" || len(got[0].First().Children()) != 0 {
		t.Fatalf("roster get = %v, want an empty roster", describeAll(got))
	}
	a.send(`<presence/>`)
	expect(t, "initial presence", a.s.Take(),
		"presence available "+a.jid.String()+" > "+a.jid.String(),
		"presence subscribe carol@remote.example > "+bare)

	// Delivered live now that the resource is available and interested.
	e.inject(`<presence from='carol@remote.example' to='alice@example.com' type='subscribe'/>`)
	expect(t, "live", a.s.Take(), "presence subscribe carol@remote.example > "+bare)

	// A second resource gets it at its initial presence too.
	a2 := e.login("alice", "tablet", false)
	a2.send(`<presence/>`)
	expect(t, "second resource", a2.s.Take(),
		"presence available "+a2.jid.String()+" > "+a2.jid.String(),
		"presence available "+a.jid.String()+" > "+a2.jid.String(),
		"presence subscribe carol@remote.example > "+bare)
	a.s.Take()

	a.send(`<presence to='carol@remote.example' type='subscribed'/>`)
	expect(t, "approve", a.s.Take(), "push carol@remote.example from > "+a.jid.String())
	expect(t, "carol", e.remote.take(),
		"presence subscribed "+bare+" > carol@remote.example",
		"presence available "+a.jid.String()+" > carol@remote.example",
		"presence available "+a2.jid.String()+" > carol@remote.example")
	it, _ = e.item("alice", "carol@remote.example")
	if it.Hidden || it.PendingIn || it.Subscription != storage.SubFrom {
		t.Errorf("after approval %+v, want visible from", it)
	}
}

// TestDeniedPendingIn checks that a denied or withdrawn request from
// someone the user never added leaves nothing behind.
func TestDeniedPendingIn(t *testing.T) {
	for _, tt := range []struct{ name, by, raw string }{
		{"denied by the user", "user", `<presence to='carol@remote.example' type='unsubscribed'/>`},
		{"withdrawn by the contact", "contact", `<presence from='carol@remote.example' to='alice@example.com' type='unsubscribe'/>`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "alice")
			a := e.login("alice", "phone", true)
			e.inject(`<presence from='carol@remote.example' to='alice@example.com' type='subscribe'/>`)
			a.s.Take()
			if tt.by == "user" {
				a.send(tt.raw)
			} else {
				e.inject(tt.raw)
			}
			if it, ok := e.item("alice", "carol@remote.example"); ok {
				t.Errorf("item left: %+v", it)
			}
			for _, st := range a.s.Take() {
				if st.Name.Local == "iq" {
					t.Errorf("pushed %s", describe(st))
				}
			}
		})
	}
}

// TestSubscribeUnknownAccount checks that a request to an account that does
// not exist is denied, which cancels the pending request.
func TestSubscribeUnknownAccount(t *testing.T) {
	e := newEnv(t, "alice")
	a := e.login("alice", "phone", true)
	a.send(`<presence to='nobody@example.com' type='subscribe'/>`)
	expect(t, "alice", a.s.Take(),
		"push nobody@example.com none ask > "+a.jid.String(),
		"push nobody@example.com none > "+a.jid.String(),
		"presence unsubscribed nobody@example.com > alice@example.com")
	it, _ := e.item("alice", "nobody@example.com")
	if it.Ask {
		t.Errorf("still pending out: %+v", it)
	}
}

// TestConcurrentHandshakes runs the handshakes between several local users
// at once: every user subscribes to every other, then every user approves
// every request. Each item is changed from both ends concurrently; none of
// the changes may be lost.
func TestConcurrentHandshakes(t *testing.T) {
	users := []string{"u0", "u1", "u2", "u3"}
	e := newEnv(t, users...)
	clients := make([]*client, len(users))
	for i, u := range users {
		clients[i] = e.login(u, "r", true)
	}
	for _, typ := range []string{"subscribe", "subscribed"} {
		var wg sync.WaitGroup
		for i, c := range clients {
			for j, u := range users {
				if i == j {
					continue
				}
				wg.Go(func() {
					st := xmlstream.New(xmlstream.NSClient, "presence", "type", typ,
						"from", c.jid.String(), "to", u+"@"+domain)
					e.r.RouteFromClient(e.ctx, st)
				})
			}
		}
		wg.Wait()
	}
	for _, u := range users {
		for _, v := range users {
			if u == v {
				continue
			}
			it, ok := e.item(u, v+"@"+domain)
			if !ok || it.Subscription != storage.SubBoth || it.Ask || it.PendingIn || it.Hidden {
				t.Errorf("%s's item for %s = %+v, want both", u, v, it)
			}
		}
	}
}
