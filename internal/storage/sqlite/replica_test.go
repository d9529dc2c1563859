package sqlite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"casp3r/internal/storage"
)

// TestReplicateViews writes every kind of change on one node or the other
// of a two-node cluster: after each, both nodes have the same views, and
// their logs verify.
func TestReplicateViews(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 2)
	n1, n2 := c.nodes[0].db, c.nodes[1].db
	var offlineID int64
	steps := []struct {
		name string
		db   *DB
		do   func(db *DB) error
	}{
		{"create juliet", n1, func(db *DB) error { return db.CreateAccount(ctx, "juliet", creds(1)) }},
		{"create romeo as admin", n2, func(db *DB) error {
			return db.CreateAccountWithRole(ctx, "romeo", creds(2), storage.RoleAdmin)
		}},
		{"roster item", n1, func(db *DB) error {
			_, err := db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net", Name: "Romeo",
				Groups: []string{"Verona", "Friends"}, Subscription: storage.SubBoth})
			return err
		}},
		{"roster item on the other node", n2, func(db *DB) error {
			_, err := db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "nurse@example.net", Ask: true})
			return err
		}},
		{"remove roster item", n2, func(db *DB) error {
			_, err := db.DeleteRosterItem(ctx, "juliet", "nurse@example.net")
			return err
		}},
		{"store offline", n1, func(db *DB) error {
			return db.StoreOffline(ctx, "juliet", []byte(`<message to="juliet@example.com"><body>a & b < c</body></message>`), 0)
		}},
		{"store offline, not UTF-8", n2, func(db *DB) error {
			return db.StoreOffline(ctx, "juliet", []byte("<message>\xff\xfe</message>"), 0)
		}},
		{"delete offline", n2, func(db *DB) error {
			msgs, err := db.OfflineMessages(ctx, "juliet")
			if err != nil || len(msgs) != 2 {
				return fmt.Errorf("OfflineMessages = %d messages, %v; want 2", len(msgs), err)
			}
			offlineID = msgs[0].ID
			return db.DeleteOffline(ctx, "juliet", offlineID)
		}},
		{"vCard", n1, func(db *DB) error {
			return db.SetVCard(ctx, "juliet", []byte("<vCard xmlns='vcard-temp'><FN>Juliet</FN></vCard>"))
		}},
		{"role", n2, func(db *DB) error { return db.SetRole(ctx, "juliet", storage.RoleLimited) }},
		{"credentials", n1, func(db *DB) error { return db.SetCredentials(ctx, "romeo", creds(3)) }},
		{"federation allow", n1, func(db *DB) error {
			return db.SetFederationRule(ctx, "capulet.example", storage.FederationAllow)
		}},
		{"federation deny", n2, func(db *DB) error {
			return db.SetFederationRule(ctx, "montague.example", storage.FederationDeny)
		}},
		{"federation remove", n1, func(db *DB) error { return db.RemoveFederationRule(ctx, "capulet.example") }},
		{"create tybalt", n2, func(db *DB) error { return db.CreateAccount(ctx, "tybalt", creds(4)) }},
		{"delete tybalt", n1, func(db *DB) error { return db.DeleteAccount(ctx, "tybalt") }},
		{"recreate tybalt", n2, func(db *DB) error { return db.CreateAccount(ctx, "tybalt", creds(5)) }},
	}
	empty := digest(t, n1)
	for _, s := range steps {
		// Each write sees the other node's writes before it: Sync first,
		// as the retry after a conflict would.
		c.sync(t)
		if err := s.do(s.db); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		c.same(t)
	}
	if d := c.same(t); d == empty {
		t.Error("ViewsDigest did not change")
	}
	for i, nd := range c.nodes {
		mustVerify(t, nd.db, "juliet", "romeo", "tybalt")
		if err := nd.db.VerifyServerLog(ctx, storage.ServerLogFederation); err != nil {
			t.Errorf("node %d: VerifyServerLog: %v", i+1, err)
		}
	}
	// Spot checks of the views on node 2.
	if role, err := n2.Role(ctx, "juliet"); err != nil || role != storage.RoleLimited {
		t.Errorf("node 2: Role(juliet) = %q, %v", role, err)
	}
	msgs, err := n2.OfflineMessages(ctx, "juliet")
	if err != nil || len(msgs) != 1 || msgs[0].ID == offlineID || !bytes.Equal(msgs[0].Stanza, []byte("<message>\xff\xfe</message>")) {
		t.Errorf("node 2: OfflineMessages = %v, %v", msgs, err)
	}
	rules, err := n1.FederationRules(ctx)
	if err != nil || len(rules) != 1 || rules["montague.example"] != storage.FederationDeny {
		t.Errorf("node 1: FederationRules = %v, %v", rules, err)
	}
	// Every node applied the whole shared log, its own entries included.
	end := c.log.end()
	for i, nd := range c.nodes {
		if cur, err := nd.db.ReplicaCursor(ctx); err != nil || cur != end {
			t.Errorf("node %d: ReplicaCursor = %d, %v; want %d", i+1, cur, err, end)
		}
	}
}

// TestReplicateConflict writes to one account on two nodes, the second
// before it has applied the first's write: its Replicate conflicts, it
// catches up and retries, and both changes land on both nodes.
func TestReplicateConflict(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 2)
	n1, n2 := c.nodes[0], c.nodes[1]
	mustCreate(t, n1.db, "juliet")
	c.same(t)

	resume := n2.pause()
	if _, err := n1.db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := n2.db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "tybalt@example.net"})
		done <- err
	}()
	waitFor(t, "a conflict", func() bool {
		_, conflicts := c.log.counts()
		return conflicts > 0
	})
	resume()
	if err := <-done; err != nil {
		t.Fatalf("PutRosterItem on node 2: %v", err)
	}
	c.same(t)
	if _, got := c.log.counts(); got != 1 {
		t.Errorf("conflicts = %d, want 1", got)
	}
	for i, nd := range c.nodes {
		items, _, err := nd.db.Roster(ctx, "juliet")
		if err != nil || len(items) != 2 {
			t.Errorf("node %d: Roster = %v, %v; want 2 items", i+1, items, err)
		}
		mustVerify(t, nd.db, "juliet")
	}
}

// TestReplicateConcurrentWriters writes to one account from several
// goroutines on each of three nodes at once: every write lands once.
func TestReplicateConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 3)
	mustCreate(t, c.nodes[0].db, "juliet")
	c.same(t)
	const perNode = 4
	var wg sync.WaitGroup
	errs := make(chan error, perNode*len(c.nodes))
	for i, nd := range c.nodes {
		for j := range perNode {
			wg.Go(func() {
				jid := fmt.Sprintf("contact%d-%d@example.net", i, j)
				if _, err := nd.db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: jid}); err != nil {
					errs <- fmt.Errorf("node %d: %s: %w", i+1, jid, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c.same(t)
	calls, conflicts := c.log.counts()
	t.Logf("%d Replicate calls, %d conflicts", calls, conflicts)
	for i, nd := range c.nodes {
		items, _, err := nd.db.Roster(ctx, "juliet")
		if err != nil || len(items) != perNode*len(c.nodes) {
			t.Errorf("node %d: Roster has %d items, %v; want %d", i+1, len(items), err, perNode*len(c.nodes))
		}
		mustVerify(t, nd.db, "juliet")
	}
}

// TestReplicateFailure checks the writes whose Replicate fails: nothing
// commits and the caller gets the error; conflicts are retried a bounded
// number of times.
func TestReplicateFailure(t *testing.T) {
	errDown := errors.New("cluster unreachable")
	tests := []struct {
		name      string
		err       error
		wantCalls int
	}{
		{"unreachable", errDown, 1},
		{"conflict forever", fmt.Errorf("refused: %w", storage.ErrConflict), maxConflicts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := newCluster(t, 2)
			n1 := c.nodes[0].db
			mustCreate(t, n1, "juliet")
			c.same(t)
			before, _ := n1.Log(ctx, "juliet", 0)
			end := c.log.end()
			c.log.mu.Lock()
			c.log.fail = func(key string) error { return tt.err }
			c.log.mu.Unlock()
			calls, _ := c.log.counts()

			_, err := n1.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net"})
			if !errors.Is(err, tt.err) {
				t.Fatalf("PutRosterItem = %v, want %v", err, tt.err)
			}
			if now, _ := c.log.counts(); now-calls != tt.wantCalls {
				got := now - calls
				t.Errorf("Replicate calls = %d, want %d", got, tt.wantCalls)
			}
			if got := c.log.end(); got != end {
				t.Errorf("shared log has %d entries, want %d", got, end)
			}
			after, _ := n1.Log(ctx, "juliet", 0)
			if len(after) != len(before) {
				t.Errorf("log has %d events, want %d", len(after), len(before))
			}
			if _, err := n1.RosterItem(ctx, "juliet", "romeo@example.net"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("RosterItem = %v, want ErrNotFound", err)
			}
			mustVerify(t, n1, "juliet")

			// Once the cluster is back, writes go through again.
			c.log.mu.Lock()
			c.log.fail = nil
			c.log.mu.Unlock()
			if _, err := n1.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net"}); err != nil {
				t.Fatal(err)
			}
			c.same(t)
		})
	}
}

// TestReplicatePartialBatch fails the replication of one log of a batch
// whose other log reaches the shared log: the request on the failed log
// gets the error, the other succeeds, and its change is there at once.
func TestReplicatePartialBatch(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 2)
	n1 := c.nodes[0]
	mustCreate(t, n1.db, "juliet", "romeo")
	c.same(t)
	errDown := errors.New("stream unavailable")
	c.log.mu.Lock()
	c.log.fail = func(key string) error {
		if key == "a:romeo" {
			return errDown
		}
		return nil
	}
	c.log.mu.Unlock()

	// Hold the write lock so that both requests are in one batch.
	lock := rawDB(t, n1.path)
	conn, err := lock.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	received := n1.db.received.Load()
	res := make(chan error, 2)
	go func() {
		_, err := n1.db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "nurse@example.net"})
		res <- err
	}()
	waitFor(t, "the writer to take the first request", func() bool { return n1.db.received.Load() == received+1 })
	resRomeo := make(chan error, 1)
	go func() {
		_, err := n1.db.PutRosterItem(ctx, "romeo", storage.RosterItem{JID: "mercutio@example.net"})
		resRomeo <- err
	}()
	resJuliet := make(chan error, 1)
	go func() {
		_, err := n1.db.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "friar@example.net"})
		resJuliet <- err
	}()
	waitFor(t, "2 more requests", func() bool { return n1.db.received.Load()-received+uint64(len(n1.db.reqs)) == 3 })
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("first request: %v", err)
	}
	if err := <-resRomeo; !errors.Is(err, errDown) {
		t.Errorf("romeo's request = %v, want %v", err, errDown)
	}
	if err := <-resJuliet; err != nil {
		t.Errorf("juliet's request = %v, want success", err)
	}
	// Read your writes: the successful change is visible at once.
	if _, err := n1.db.RosterItem(ctx, "juliet", "friar@example.net"); err != nil {
		t.Errorf("RosterItem(juliet, friar) = %v", err)
	}
	if _, err := n1.db.RosterItem(ctx, "romeo", "mercutio@example.net"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem(romeo, mercutio) = %v, want ErrNotFound", err)
	}
	c.same(t)
	mustVerify(t, n1.db, "juliet", "romeo")
}

// TestPushPending writes with a second handle without replicator, as the
// `casp3r user` command does, and before the DB joined the cluster:
// PushPending ships those logs.
func TestPushPending(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "casp3r.db")
	db := openPath(t, path)
	mustCreate(t, db, "early") // before the cluster
	c := newCluster(t, 1)
	n1 := c.addNode(t, db)
	if n, err := n1.db.PushPending(ctx); err != nil || n != 1 {
		t.Fatalf("PushPending = %d, %v; want 1", n, err)
	}
	c.same(t)

	cli := openPath(t, path) // no replicator
	mustCreate(t, cli, "juliet")
	if err := cli.SetFederationRule(ctx, "spam.example", storage.FederationDeny); err != nil {
		t.Fatal(err)
	}
	if err := cli.SetRole(ctx, "early", storage.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if n, err := n1.db.PushPending(ctx); err != nil || n != 3 {
		t.Fatalf("PushPending = %d, %v; want 3", n, err)
	}
	if n, err := n1.db.PushPending(ctx); err != nil || n != 0 {
		t.Fatalf("PushPending again = %d, %v; want 0", n, err)
	}
	// A write on the replicated handle ships the unreplicated events of
	// its log along.
	if _, err := cli.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net"}); err != nil {
		t.Fatal(err)
	}
	if err := n1.db.StoreOffline(ctx, "juliet", []byte("<message/>"), 0); err != nil {
		t.Fatal(err)
	}
	if n, err := n1.db.PushPending(ctx); err != nil || n != 0 {
		t.Fatalf("PushPending after a replicated write = %d, %v; want 0", n, err)
	}
	c.same(t)
	for i, nd := range c.nodes {
		mustVerify(t, nd.db, "early", "juliet")
		if _, err := nd.db.RosterItem(ctx, "juliet", "romeo@example.net"); err != nil {
			t.Errorf("node %d: RosterItem = %v", i+1, err)
		}
	}
	if _, err := cli.PushPending(ctx); err == nil {
		t.Error("PushPending without replicator succeeded")
	}
}

// TestReplay applies the shared log again: entries at or below the cursor
// are skipped, and with the cursor gone the events already there are.
func TestReplay(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 2)
	n1, n2 := c.nodes[0].db, c.nodes[1].db
	mustCreate(t, n1, "juliet")
	c.sync(t)
	if _, err := n2.PutRosterItem(ctx, "juliet", storage.RosterItem{JID: "romeo@example.net"}); err != nil {
		t.Fatal(err)
	}
	if err := n1.SetFederationRule(ctx, "capulet.example", storage.FederationAllow); err != nil {
		t.Fatal(err)
	}
	want := c.same(t)
	c.log.mu.Lock()
	entries := append([]memEntry(nil), c.log.entries...)
	c.log.mu.Unlock()
	replay := func() {
		t.Helper()
		for i, e := range entries {
			got, err := n2.ApplyReplicated(ctx, uint64(i+1), e.data)
			if err != nil {
				t.Fatalf("ApplyReplicated(%d): %v", i+1, err)
			}
			if got != (Applied{}) {
				t.Errorf("ApplyReplicated(%d) = %+v for events already there", i+1, got)
			}
		}
		if got := digest(t, n2); got != want {
			t.Errorf("ViewsDigest changed after replay")
		}
		if cur, _ := n2.ReplicaCursor(ctx); cur != uint64(len(entries)) {
			t.Errorf("ReplicaCursor = %d, want %d", cur, len(entries))
		}
	}
	replay()
	mustExec(t, rawDB(t, c.nodes[1].path), `DELETE FROM replica_cursor`)
	replay()
	mustVerify(t, n2, "juliet")
}

// TestAppliedOffline checks what ApplyReplicated reports: the offline
// messages another node stored, and nothing for a node's own writes coming
// back.
func TestAppliedOffline(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 2)
	n1 := c.nodes[0].db
	mustCreate(t, n1, "juliet")
	for _, body := range []string{"one", "two"} {
		msg := []byte(`<message xmlns="jabber:client" to="juliet@example.net"><body>` + body + `</body></message>`)
		if err := n1.StoreOffline(ctx, "juliet", msg, 10); err != nil {
			t.Fatal(err)
		}
	}
	c.sync(t)
	c.log.mu.Lock()
	own, other := append([]Applied(nil), c.nodes[0].got...), append([]Applied(nil), c.nodes[1].got...)
	c.log.mu.Unlock()
	for i, got := range own {
		if got != (Applied{}) {
			t.Errorf("writer's own entry %d came back as %+v, want nothing new", i+1, got)
		}
	}
	offline := 0
	for _, got := range other {
		if got.Offline > 0 && got.Account != "juliet" {
			t.Errorf("offline messages reported for %q, want juliet", got.Account)
		}
		offline += got.Offline
	}
	if offline != 2 {
		t.Errorf("the other node was told of %d offline messages, want 2 (%+v)", offline, other)
	}
}

// signedEntry returns an entry appending one roster-set event to the log of
// user in db, signed with the account's key.
func signedEntry(t *testing.T, db *DB, user string) entry {
	t.Helper()
	ctx := context.Background()
	h, err := db.Head(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	var pub, priv []byte
	if err := db.queryRow(ctx, `SELECT public, private FROM accounts_keys WHERE account = ?`, user).Scan(&pub, &priv); err != nil {
		t.Fatal(err)
	}
	ev := entryEvent{Seq: h.Seq + 1, Type: storage.EventRosterSet, Time: 1e18, Prev: h.Hash}
	ev.setData([]byte(`{"jid":"forged@example.net","subscription":"both"}`))
	sum := storage.HashEvent(ev.Prev, ev.Seq, ev.Type, ev.data(), ev.Time)
	ev.Hash = sum[:]
	sig := ed25519.Sign(ed25519.PrivateKey(priv), storage.HeadMessage(user, ev.Seq, ev.Hash))
	return entry{V: entryVersion, Kind: kindAccount, Name: user, Events: []entryEvent{ev}, Sig: sig}
}

// TestApplyForged gives ApplyReplicated entries that must not apply: each
// returns ErrCorrupt, changes nothing, and moves the cursor past it.
func TestApplyForged(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	if err := db.SetFederationRule(ctx, "capulet.example", storage.FederationAllow); err != nil {
		t.Fatal(err)
	}
	fed, err := db.ServerLog(ctx, storage.ServerLogFederation, 0)
	if err != nil {
		t.Fatal(err)
	}
	encode := func(e entry) []byte {
		b, err := encodeEntry(&e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		data func() []byte
	}{
		{"not JSON", func() []byte { return []byte("{") }},
		{"unknown version", func() []byte { e := signedEntry(t, db, "juliet"); e.V = 2; return encode(e) }},
		{"bad hash", func() []byte {
			e := signedEntry(t, db, "juliet")
			e.Events[0].Data = []byte(`{"jid":"other@example.net","subscription":"both"}`)
			return encode(e)
		}},
		{"broken chain", func() []byte {
			e := signedEntry(t, db, "juliet")
			ev := &e.Events[0]
			ev.Prev = bytes.Repeat([]byte{1}, 32)
			sum := storage.HashEvent(ev.Prev, ev.Seq, ev.Type, ev.data(), ev.Time)
			ev.Hash = sum[:]
			return encode(e)
		}},
		{"gap", func() []byte {
			e := signedEntry(t, db, "juliet")
			ev := &e.Events[0]
			ev.Seq++
			sum := storage.HashEvent(ev.Prev, ev.Seq, ev.Type, ev.data(), ev.Time)
			ev.Hash = sum[:]
			return encode(e)
		}},
		{"fork", func() []byte {
			e := signedEntry(t, db, "juliet")
			ev := &e.Events[0]
			ev.Seq, ev.Prev = 1, []byte{}
			sum := storage.HashEvent(ev.Prev, ev.Seq, ev.Type, ev.data(), ev.Time)
			ev.Hash = sum[:]
			return encode(e)
		}},
		{"bad signature", func() []byte {
			e := signedEntry(t, db, "juliet")
			e.Sig[0] ^= 1
			return encode(e)
		}},
		{"no signature", func() []byte { e := signedEntry(t, db, "juliet"); e.Sig = nil; return encode(e) }},
		{"bad data", func() []byte {
			e := signedEntry(t, db, "juliet")
			ev := &e.Events[0]
			ev.setData([]byte(`{"jid":7}`))
			sum := storage.HashEvent(ev.Prev, ev.Seq, ev.Type, ev.data(), ev.Time)
			ev.Hash = sum[:]
			_, priv := juliet(t, db)
			e.Sig = ed25519.Sign(priv, storage.HeadMessage("juliet", ev.Seq, ev.Hash))
			return encode(e)
		}},
		{"server log fork", func() []byte {
			ev := entryEvent{Seq: 1, Type: storage.EventFederationDeny, Time: 1, Prev: []byte{}}
			ev.setData([]byte(`{"domain":"capulet.example"}`))
			sum := storage.HashEvent(ev.Prev, ev.Seq, ev.Type, ev.data(), ev.Time)
			ev.Hash = sum[:]
			return encode(entry{V: entryVersion, Kind: kindServer, Name: storage.ServerLogFederation, Events: []entryEvent{ev}})
		}},
		{"server log bad hash", func() []byte {
			last := fed[len(fed)-1]
			ev := entryEvent{Seq: last.Seq + 1, Type: storage.EventFederationDeny, Time: 1, Prev: last.Hash, Hash: last.Hash}
			ev.setData([]byte(`{"domain":"capulet.example"}`))
			return encode(entry{V: entryVersion, Kind: kindServer, Name: storage.ServerLogFederation, Events: []entryEvent{ev}})
		}},
	}
	want := digest(t, db)
	pos := uint64(10)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pos++
			_, err := db.ApplyReplicated(ctx, pos, tt.data())
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Errorf("ApplyReplicated = %v, want ErrCorrupt", err)
			}
			if cur, err := db.ReplicaCursor(ctx); err != nil || cur != pos {
				t.Errorf("ReplicaCursor = %d, %v; want %d", cur, err, pos)
			}
			if got := digest(t, db); got != want {
				t.Errorf("views changed:\n%s", dumpViews(t, db.path))
			}
			mustVerify(t, db, "juliet")
			if err := db.VerifyServerLog(ctx, storage.ServerLogFederation); err != nil {
				t.Error(err)
			}
		})
	}
	// The genuine entry applies.
	pos++
	if _, err := db.ApplyReplicated(ctx, pos, encode(signedEntry(t, db, "juliet"))); err != nil {
		t.Fatalf("ApplyReplicated(genuine) = %v", err)
	}
	if _, err := db.RosterItem(ctx, "juliet", "forged@example.net"); err != nil {
		t.Errorf("RosterItem = %v", err)
	}
	mustVerify(t, db, "juliet")
	// An entry below the cursor is skipped, even a bad one.
	if _, err := db.ApplyReplicated(ctx, 1, []byte("{")); err != nil {
		t.Errorf("ApplyReplicated below the cursor = %v", err)
	}
}

func juliet(t *testing.T, db *DB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	var pub, priv []byte
	if err := db.queryRow(context.Background(), `SELECT public, private FROM accounts_keys WHERE account = 'juliet'`).Scan(&pub, &priv); err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestEntryData checks that event data of every form crosses the envelope
// byte for byte (the hashes cover those bytes).
func TestEntryData(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		inRaw bool // carried as JSON, not base64
	}{
		{"compact JSON", `{"jid":"romeo@example.net","groups":["a"]}`, true},
		{"HTML characters", `{"stanza":"<message>&amp; <>\u0026</message>"}`, true},
		{"line separators", "{\"stanza\":\"\u2028\u2029\"}", true},
		{"escapes", `{"stanza":"\"\\\n\t\u0000"}`, true},
		{"spaces in strings", `{"a":"b c"}`, true},
		{"spaces outside strings", `{"a": "b"}`, false},
		{"not JSON", `<message/>`, false},
		{"not UTF-8", "{\"a\":\"\xff\"}", false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev entryEvent
			ev.setData([]byte(tt.data))
			if got := ev.Data != nil; got != tt.inRaw {
				t.Errorf("carried as JSON = %v, want %v", got, tt.inRaw)
			}
			b, err := encodeEntry(&entry{V: 1, Kind: kindAccount, Name: "juliet", Events: []entryEvent{ev}})
			if err != nil {
				t.Fatal(err)
			}
			e, err := decodeEntry(b)
			if err != nil {
				t.Fatalf("decodeEntry(%s): %v", b, err)
			}
			if got := string(e.Events[0].data()); got != tt.data {
				t.Errorf("data = %q, want %q (entry %s)", got, tt.data, b)
			}
		})
	}
}

// TestMigrateFromVersion2 opens a database of schema version 2 (as the
// program before replication left it) in a cluster: it is upgraded and
// PushPending ships its logs.
func TestMigrateFromVersion2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "casp3r.db")
	makeVersion1(t, path, "juliet", "romeo")
	r := rawDB(t, path)
	mustExec(t, r, migrations[1])
	mustExec(t, r, `PRAGMA user_version = 2`)
	c := newCluster(t, 1)
	n1 := c.addNode(t, openPath(t, path))
	var v int
	if err := r.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if got, want := v, len(migrations); got != want {
		t.Errorf("user_version = %d, want %d", got, want)
	}
	if cur, err := n1.db.ReplicaCursor(ctx); err != nil || cur != 0 {
		t.Errorf("ReplicaCursor = %d, %v; want 0", cur, err)
	}
	if n, err := n1.db.PushPending(ctx); err != nil || n != 2 {
		t.Fatalf("PushPending = %d, %v; want 2", n, err)
	}
	if err := n1.db.SetRole(ctx, "romeo", storage.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	c.same(t)
	mustVerify(t, c.nodes[0].db, "juliet", "romeo")
	mustVerify(t, n1.db, "juliet", "romeo")
}

// TestEntryEnvelope pins the envelope's field names, which other nodes
// (possibly of another version) decode.
func TestEntryEnvelope(t *testing.T) {
	ev := entryEvent{Seq: 1, Type: storage.EventAccountCreated, Time: 5, Prev: []byte{}, Hash: []byte{1}}
	ev.setData([]byte(`{"key":"AA=="}`))
	b, err := encodeEntry(&entry{V: 1, Kind: kindAccount, Name: "juliet", Events: []entryEvent{ev},
		Sig: []byte{2}, Key: &entryKey{Public: []byte{3}, Private: []byte{4}}})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":1,"kind":"a","name":"juliet","events":[{"seq":1,"type":"account-created","data":{"key":"AA=="},"time":5,"prev":"","hash":"AQ=="}],"sig":"Ag==","key":{"public":"Aw==","private":"BA=="}}`
	if got := string(b); got != want {
		t.Errorf("entry =\n%s\nwant\n%s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
}

// TestApplyBatch applies entries together: good and corrupt ones keep
// their own outcome and the cursor ends past the last one.
func TestApplyBatch(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustCreate(t, db, "juliet")
	good, err := encodeEntry(ptr(signedEntry(t, db, "juliet")))
	if err != nil {
		t.Fatal(err)
	}
	got, errs := db.ApplyReplicatedBatch(ctx, []Replicated{
		{Pos: 11, Data: []byte("{")},
		{Pos: 12, Data: good},
		{Pos: 13, Data: []byte("{")},
	})
	for i, wantCorrupt := range []bool{true, false, true} {
		if errors.Is(errs[i], storage.ErrCorrupt) != wantCorrupt || (!wantCorrupt && errs[i] != nil) {
			t.Errorf("entry %d: error %v, want corrupt = %v", i, errs[i], wantCorrupt)
		}
	}
	if got[1].Account != "juliet" || got[0] != (Applied{}) || got[2] != (Applied{}) {
		t.Errorf("applied %+v, want juliet's entry only", got)
	}
	if cur, err := db.ReplicaCursor(ctx); err != nil || cur != 13 {
		t.Errorf("ReplicaCursor = %d, %v; want 13", cur, err)
	}
	if _, err := db.RosterItem(ctx, "juliet", "forged@example.net"); err != nil {
		t.Errorf("the good entry's roster item: %v", err)
	}
	mustVerify(t, db, "juliet")
}

func ptr[T any](v T) *T { return &v }

// TestApplyBatchFailedTransaction: the writer splits a large batch over
// several transactions; when one fails as a whole (here: it cannot begin),
// the entries after it are not applied either, so the apply cursor stays
// below the first entry that was not.
func TestApplyBatchFailedTransaction(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	entries := make([]Replicated, maxBatch+50) // more than one transaction holds
	for i := range entries {
		// Corrupt entries: each would move the cursor past itself.
		entries[i] = Replicated{Pos: uint64(i + 1), Data: []byte("{")}
	}
	errIO := errors.New("disk I/O error")
	db.failBegin.Store(&errIO)
	_, errs := db.ApplyReplicatedBatch(ctx, entries)
	if !errors.Is(errs[0], errIO) {
		t.Fatalf("first entry: %v, want the failed begin", errs[0])
	}
	for i, err := range errs {
		if err == nil || errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("entry %d after the failed transaction: %v, want it refused", i+1, err)
		}
	}
	if cur, err := db.ReplicaCursor(ctx); err != nil || cur != 0 {
		t.Errorf("ReplicaCursor = %d, %v; want 0: nothing was applied", cur, err)
	}
	// Given again, the batch applies (the corrupt entries are passed over).
	if _, errs := db.ApplyReplicatedBatch(ctx, entries); !errors.Is(errs[len(errs)-1], storage.ErrCorrupt) {
		t.Errorf("again: last entry %v, want corrupt", errs[len(errs)-1])
	}
	if cur, err := db.ReplicaCursor(ctx); err != nil || cur != uint64(len(entries)) {
		t.Errorf("ReplicaCursor after the retry = %d, %v; want %d", cur, err, len(entries))
	}
}
