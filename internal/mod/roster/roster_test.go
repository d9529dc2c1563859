package roster

import (
	"slices"
	"strings"
	"testing"

	"casp3r/internal/storage"
	"casp3r/internal/xmlstream"
)

// rosterVer returns the current roster version of user.
func (e *env) rosterVer(user string) string {
	e.t.Helper()
	_, ver, err := e.db.Roster(e.ctx, user)
	if err != nil {
		e.t.Fatal(err)
	}
	return ver
}

// reply returns the one iq c got back, failing otherwise.
func (c *client) reply(t *testing.T) *xmlstream.Element {
	t.Helper()
	var iqs []*xmlstream.Element
	for _, st := range c.s.Take() {
		if st.Name.Local == "iq" && st.Get("type") != "set" {
			iqs = append(iqs, st)
		}
	}
	if len(iqs) != 1 {
		t.Fatalf("got %d replies, want 1: %v", len(iqs), describeAll(iqs))
	}
	return iqs[0]
}

func itemJIDs(q *xmlstream.Element) []string {
	var out []string
	for _, it := range q.Children() {
		out = append(out, it.Get("jid"))
	}
	return out
}

// TestRosterGet checks the items of a roster get and XEP-0237 versioning.
func TestRosterGet(t *testing.T) {
	e := newEnv(t, "alice")
	e.put("alice", storage.RosterItem{JID: "bob@example.com", Name: "Bob", Groups: []string{"Friends", "Work"}, Subscription: storage.SubBoth})
	e.put("alice", storage.RosterItem{JID: "dave@remote.example", Subscription: storage.SubNone, Ask: true, Approved: true})
	e.put("alice", storage.RosterItem{JID: "carol@remote.example", Subscription: storage.SubNone, PendingIn: true, Hidden: true})
	a := e.login("alice", "phone", false)
	ver := e.rosterVer("alice")

	a.send(`<iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>`)
	r := a.reply(t)
	q := r.First()
	if r.Get("type") != "result" || !q.Is(NS, "query") {
		t.Fatalf("reply %s", r)
	}
	if got, want := q.Get("ver"), ver; got != want {
		t.Errorf("ver = %q, want %q", got, want)
	}
	if got, want := itemJIDs(q), []string{"bob@example.com", "dave@remote.example"}; !slices.Equal(got, want) {
		t.Errorf("items %v, want %v (hidden ones left out)", got, want)
	}
	bob := q.Children()[0]
	if bob.Get("name") != "Bob" || bob.Get("subscription") != "both" || bob.Has("ask") || bob.Has("approved") {
		t.Errorf("bob item %s", bob)
	}
	var groups []string
	for _, g := range bob.Children() {
		groups = append(groups, g.Text())
	}
	if want := []string{"Friends", "Work"}; !slices.Equal(groups, want) {
		t.Errorf("groups %v, want %v", groups, want)
	}
	dave := q.Children()[1]
	if dave.Get("subscription") != "none" || dave.Get("ask") != "subscribe" || dave.Get("approved") != "true" {
		t.Errorf("dave item %s", dave)
	}
	if res, _ := e.r.Lookup(a.jid); !res.Interested {
		t.Error("roster get did not mark the resource interested")
	}

	tests := []struct {
		name  string
		ver   string // attribute value; "-" for none
		empty bool
	}{
		{"no ver", "-", false},
		{"empty ver", "", false},
		{"current ver", ver, true},
		{"stale ver", "1", false},
	}
	for _, tt := range tests {
		query := `<query xmlns='jabber:iq:roster'/>`
		if tt.ver != "-" {
			query = `<query xmlns='jabber:iq:roster' ver='` + tt.ver + `'/>`
		}
		a.send(`<iq type='get' id='g'>` + query + `</iq>`)
		r := a.reply(t)
		if got := r.First() == nil; got != tt.empty {
			t.Errorf("%s: empty result = %v, want %v: %s", tt.name, got, tt.empty, r)
		}
		if !tt.empty && len(r.First().Children()) != 2 {
			t.Errorf("%s: %d items, want 2", tt.name, len(r.First().Children()))
		}
	}

	// A change gives a new version, carried by the push.
	a.send(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='erin@example.com'/></query></iq>`)
	got := a.s.Take()
	newVer := e.rosterVer("alice")
	if newVer == ver {
		t.Fatal("roster version unchanged by a set")
	}
	expect(t, "set", got, "push erin@example.com none > "+a.jid.String(), "result s1")
	for _, st := range got {
		if st.Get("type") == "set" && st.First().Get("ver") != newVer {
			t.Errorf("push ver = %q, want %q", st.First().Get("ver"), newVer)
		}
	}
	a.send(`<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='` + newVer + `'/></iq>`)
	if r := a.reply(t); r.First() != nil {
		t.Errorf("current ver after set: %s", r)
	}
	a.send(`<iq type='get' id='g3'><query xmlns='jabber:iq:roster' ver='` + ver + `'/></iq>`)
	if r := a.reply(t); r.First() == nil || len(r.First().Children()) != 3 {
		t.Errorf("old ver after set: %s", r)
	}
}

// TestRosterSet checks adding and updating items and the pushes.
func TestRosterSet(t *testing.T) {
	e := newEnv(t, "alice")
	a1 := e.login("alice", "phone", true)
	a2 := e.login("alice", "tablet", true)
	a3 := e.login("alice", "plain", false) // never asked for the roster
	a1.s.Take()

	a1.send(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>` +
		`<item jid='Bob@Example.com' name='Bobby' subscription='both' ask='subscribe'><group>Friends</group><group>Chess</group></item>` +
		`</query></iq>`)
	expect(t, "sender", a1.s.Take(), "push bob@example.com none > "+a1.jid.String(), "result s1")
	expect(t, "other interested", a2.s.Take(), "push bob@example.com none > "+a2.jid.String())
	expect(t, "not interested", a3.s.Take())
	it, ok := e.item("alice", "bob@example.com")
	if !ok || it.Name != "Bobby" || !slices.Equal(it.Groups, []string{"Friends", "Chess"}) ||
		it.Subscription != storage.SubNone || it.Ask {
		t.Errorf("stored %+v", it)
	}

	// An update keeps the subscription state and replaces name and groups.
	e.put("alice", storage.RosterItem{JID: "bob@example.com", Name: "Bobby", Subscription: storage.SubTo, PendingIn: true})
	a1.send(`<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='bob@example.com'/></query></iq>`)
	got := a1.s.Take()
	expect(t, "update", got, "push bob@example.com to > "+a1.jid.String(), "result s2")
	it, _ = e.item("alice", "bob@example.com")
	if it.Name != "" || len(it.Groups) != 0 || it.Subscription != storage.SubTo || !it.PendingIn {
		t.Errorf("updated %+v", it)
	}

	// Adding someone whose request is pending makes the hidden item
	// visible, still pending.
	e.inject(`<presence from='carol@remote.example' to='alice@example.com' type='subscribe'/>`)
	a1.s.Take()
	a2.s.Take()
	a1.send(`<iq type='set' id='s3'><query xmlns='jabber:iq:roster'><item jid='carol@remote.example' name='Carol'/></query></iq>`)
	expect(t, "unhide", a1.s.Take(), "push carol@remote.example none > "+a1.jid.String(), "result s3")
	it, _ = e.item("alice", "carol@remote.example")
	if it.Hidden || !it.PendingIn || it.Name != "Carol" {
		t.Errorf("unhidden %+v", it)
	}
}

// TestRosterSetErrors checks the error cases of RFC 6121 §2.3.3 and §2.5.3.
func TestRosterSetErrors(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	a := e.login("alice", "phone", true)
	tests := []struct {
		name  string
		to    string
		items string
		cond  string
	}{
		{"no item", "", ``, "bad-request"},
		{"two items", "", `<item jid='b@example.com'/><item jid='c@example.com'/>`, "bad-request"},
		{"not an item", "", `<foo jid='b@example.com'/>`, "bad-request"},
		{"no jid", "", `<item name='x'/>`, "bad-request"},
		{"malformed jid", "", `<item jid='a@b@c@'/>`, "jid-malformed"},
		{"full jid", "", `<item jid='b@example.com/res'/>`, "bad-request"},
		{"own jid", "", `<item jid='alice@example.com'/>`, "not-allowed"},
		{"duplicate group", "", `<item jid='b@example.com'><group>A</group><group>A</group></item>`, "bad-request"},
		{"empty group", "", `<item jid='b@example.com'><group/></item>`, "not-acceptable"},
		{"long group", "", `<item jid='b@example.com'><group>` + strings.Repeat("g", MaxGroupLen+1) + `</group></item>`, "not-acceptable"},
		{"long name", "", `<item jid='b@example.com' name='` + strings.Repeat("n", MaxNameLen+1) + `'/>`, "not-acceptable"},
		{"remove missing", "", `<item jid='zed@example.com' subscription='remove'/>`, "item-not-found"},
		{"other account", "bob@example.com", `<item jid='c@example.com'/>`, "forbidden"},
		{"own bare jid", "alice@example.com", `<item jid='c@example.com' subscription='from'/>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := ""
			if tt.to != "" {
				to = ` to='` + tt.to + `'`
			}
			a.send(`<iq type='set' id='x'` + to + `><query xmlns='jabber:iq:roster'>` + tt.items + `</query></iq>`)
			r := a.reply(t)
			want := "error x " + tt.cond
			if tt.cond == "" {
				want = "result x"
			}
			if got := describe(r); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
	// The subscription attribute of a set is ignored (§2.1.2.5).
	if it, _ := e.item("alice", "c@example.com"); it.Subscription != storage.SubNone {
		t.Errorf("subscription taken from the set: %+v", it)
	}
	a.send(`<iq type='get' id='x' to='bob@example.com'><query xmlns='jabber:iq:roster'/></iq>`)
	if got := describe(a.reply(t)); got != "error x forbidden" {
		t.Errorf("get of another roster: %s", got)
	}
	e.inject(`<iq type='get' id='y' from='carol@remote.example/r' to='alice@example.com'><query xmlns='jabber:iq:roster'/></iq>`)
	expect(t, "remote get", e.remote.take(), "error y forbidden")
}

// TestRosterRemove checks that removing an item cancels the subscriptions
// both ways (RFC 6121 §2.5.2).
func TestRosterRemove(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	e.subscribe("alice", "bob@example.com", storage.SubBoth)
	e.subscribe("bob", "alice@example.com", storage.SubBoth)
	b := e.login("bob", "laptop", true)
	a := e.login("alice", "phone", true)
	b.s.Take()
	af, bf := a.jid.String(), b.jid.String()

	a.send(`<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@example.com' subscription='remove'/></query></iq>`)
	expect(t, "alice", a.s.Take(),
		"push bob@example.com remove > "+af,
		"result rm",
		"presence unavailable "+bf+" > alice@example.com")
	expect(t, "bob", b.s.Take(),
		"push alice@example.com to > "+bf,
		"push alice@example.com none > "+bf,
		"presence unsubscribe alice@example.com > bob@example.com",
		"presence unsubscribed alice@example.com > bob@example.com",
		"presence unavailable "+af+" > bob@example.com")
	if it, ok := e.item("alice", "bob@example.com"); ok {
		t.Errorf("alice's item left: %+v", it)
	}
	if it, ok := e.item("bob", "alice@example.com"); !ok || it.Subscription != storage.SubNone || it.Hidden {
		t.Errorf("bob's item %+v, want visible none", it)
	}

	// Removing a pending request denies it.
	e.inject(`<presence from='carol@remote.example' to='alice@example.com' type='subscribe'/>`)
	a.s.Take()
	e.remote.take()
	a.send(`<iq type='set' id='rm2'><query xmlns='jabber:iq:roster'><item jid='carol@remote.example' subscription='remove'/></query></iq>`)
	expect(t, "hidden remove", a.s.Take(), "result rm2")
	expect(t, "carol", e.remote.take(), "presence unsubscribed alice@example.com > carol@remote.example")
}
