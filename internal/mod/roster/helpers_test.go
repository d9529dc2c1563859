package roster

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"casp3r/internal/jid"
	"casp3r/internal/router"
	"casp3r/internal/routertest"
	"casp3r/internal/stanza"
	"casp3r/internal/storage"
	"casp3r/internal/storage/sqlite"
	"casp3r/internal/xmlstream"
)

var (
	_ Store                  = (*sqlite.DB)(nil)
	_ router.PresenceHandler = (*Module)(nil)
	_ router.IQHandler       = (*Module)(nil)
)

const domain = "example.com"

// fakeRemote records the stanzas routed to other domains.
type fakeRemote struct {
	mu   sync.Mutex
	sent []*xmlstream.Element
}

func (f *fakeRemote) RouteRemote(_ context.Context, st *xmlstream.Element) error {
	f.mu.Lock()
	f.sent = append(f.sent, st)
	f.mu.Unlock()
	return nil
}

func (f *fakeRemote) take() []*xmlstream.Element {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.sent
	f.sent = nil
	return out
}

// hookRecorder is an AvailableHook that records the resources it is told of.
type hookRecorder struct {
	mu  sync.Mutex
	got []string
}

func (h *hookRecorder) InitialPresence(_ context.Context, res router.Resource) {
	h.mu.Lock()
	h.got = append(h.got, res.JID.String())
	h.mu.Unlock()
}

type env struct {
	t      *testing.T
	ctx    context.Context
	r      *router.Router
	m      *Module
	db     *sqlite.DB
	remote *fakeRemote
	hook   *hookRecorder
}

// newEnv returns a router for example.com with the module wired, on a
// fresh SQLite store holding the given accounts.
func newEnv(t *testing.T, users ...string) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, u := range users {
		if err := db.CreateAccount(ctx, u, storage.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, ctx: ctx, db: db, remote: &fakeRemote{}, hook: &hookRecorder{}}
	e.r = routertest.NewRouter(router.Config{
		Domain:   jid.MustParse(domain),
		Accounts: db,
		Remote:   e.remote,
	})
	e.m = New(e.r, db, e.hook)
	e.r.SetPresenceHandler(e.m)
	e.r.HandleIQ(NS, "query", e.m)
	return e
}

// client is a bound local session.
type client struct {
	e   *env
	s   *routertest.Session
	jid jid.JID
}

// login binds user/resource; with roster, it requests the roster and sends
// initial presence, and the stanzas this caused are discarded.
func (e *env) login(user, resource string, roster bool) *client {
	e.t.Helper()
	s := routertest.Bind(e.t, e.r, user+"@"+domain+"/"+resource)
	c := &client{e: e, s: s, jid: s.JID()}
	if roster {
		c.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
		c.send(`<presence/>`)
		c.s.Take()
	}
	return c
}

// logout unbinds the session and tells the module, as c2s does.
func (c *client) logout() {
	res, directed, ok := c.e.r.Unbind(c.s)
	if !ok {
		c.e.t.Fatal("unbind: not bound")
	}
	c.e.m.Ended(c.e.ctx, res, directed)
}

// send routes raw XML (in jabber:client) from the client, from stamped.
func (c *client) send(raw string) {
	c.e.t.Helper()
	st := parse(c.e.t, raw)
	st.SetAttr("from", c.jid.String())
	if st.Name.Local == "iq" && st.Get("to") == "" {
		// The router's route parses an absent 'to' with jid.Parse, which
		// rejects "": address the own account explicitly meanwhile.
		st.SetAttr("to", c.jid.Bare().String())
	}
	c.e.r.RouteFromClient(c.e.ctx, st)
}

// inject routes raw XML as if it came from another server.
func (e *env) inject(raw string) {
	e.t.Helper()
	e.r.Route(e.ctx, parse(e.t, raw))
}

// put stores a roster item of user directly.
func (e *env) put(user string, it storage.RosterItem) {
	e.t.Helper()
	if _, err := e.db.PutRosterItem(e.ctx, user, it); err != nil {
		e.t.Fatal(err)
	}
}

// item returns user's item for contact; ok is false if there is none.
func (e *env) item(user, contact string) (storage.RosterItem, bool) {
	e.t.Helper()
	it, err := e.db.RosterItem(e.ctx, user, contact)
	if errors.Is(err, storage.ErrNotFound) {
		return it, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return it, true
}

// parse decodes one element of raw XML whose default namespace is
// jabber:client.
func parse(t *testing.T, raw string) *xmlstream.Element {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader("<w xmlns='jabber:client'>" + raw + "</w>"))
	var stack []*xmlstream.Element
	var root *xmlstream.Element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("parse %s: %v", raw, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			el := &xmlstream.Element{Name: tok.Name}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				el.Attr = append(el.Attr, a)
			}
			if len(stack) > 0 {
				stack[len(stack)-1].Append(el)
			}
			if len(stack) == 1 && root == nil {
				root = el
			}
			stack = append(stack, el)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 1 {
				top := stack[len(stack)-1]
				top.Nodes = append(top.Nodes, xmlstream.Node{Text: string(tok)})
			}
		}
	}
	if root == nil {
		t.Fatalf("parse %s: no element", raw)
	}
	return root
}

// describe summarizes a stanza for comparisons:
//
//	presence <type> <from> > <to>
//	push <jid> <subscription>[ ask][ approved] > <to>
//	result <id> | error <id> <condition>
func describe(st *xmlstream.Element) string {
	switch {
	case st.Name.Local == "presence":
		return "presence " + stanza.Type(st) + " " + st.Get("from") + " > " + st.Get("to")
	case st.Name.Local == "iq" && st.Get("type") == "set" && st.First().Is(NS, "query"):
		q := st.First()
		it := q.First()
		s := "push " + it.Get("jid") + " " + it.Get("subscription")
		if it.Get("ask") != "" {
			s += " ask"
		}
		if it.Get("approved") == "true" {
			s += " approved"
		}
		return s + " > " + st.Get("to")
	case st.Name.Local == "iq" && st.Get("type") == "result":
		return "result " + st.Get("id")
	case st.Name.Local == "iq" && st.Get("type") == "error":
		return "error " + st.Get("id") + " " + stanza.ParseError(st).Condition
	}
	return st.String()
}

func describeAll(sts []*xmlstream.Element) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = describe(st)
	}
	slices.Sort(out)
	return out
}

// expect checks that the stanzas got are, in any order, those of want.
func expect(t *testing.T, who string, got []*xmlstream.Element, want ...string) {
	t.Helper()
	g := describeAll(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if len(w) == 0 {
		w = []string{}
	}
	if !slices.Equal(g, w) {
		t.Errorf("%s got:\n\t%s\nwant:\n\t%s", who, strings.Join(g, "\n\t"), strings.Join(w, "\n\t"))
	}
}
