//go:build integration

package interop

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Failover: a node of three dies (SIGKILL) while messages stream through
// the cluster. Acknowledged messages must not be lost, the survivors must
// work again within failoverMax, and the dead node, restarted, must catch up.

const (
	// streamInterval paces a message stream (two stanzas per message, well
	// under [limits] stanzas_per_second, and few enough that a recipient
	// offline for a while stays under [storage] offline_max).
	streamInterval = 40 * time.Millisecond
	// collectTimeout is the read timeout of a client whose reads a
	// goroutine owns: long, because the test decides when it has waited
	// enough, and a timed-out client cannot read again.
	collectTimeout = 3 * time.Minute
)

// arrival is a stanza a client read, and when.
type arrival struct {
	at time.Time
	st stanza
}

// inbox records what a raw client reads, from the one goroutine that owns
// the client's reads.
type inbox struct {
	mu    sync.Mutex
	items []arrival
	err   error // why reading stopped; nil while it goes on
}

func (b *inbox) add(st stanza) {
	b.mu.Lock()
	b.items = append(b.items, arrival{time.Now(), st})
	b.mu.Unlock()
}

func (b *inbox) stop(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

// first returns when the first stanza that match accepts and that arrived
// after since came.
func (b *inbox) first(since time.Time, match func(stanza) bool) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range b.items {
		if !a.at.Before(since) && match(a.st) {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// last returns the last stanza that match accepts.
func (b *inbox) last(match func(stanza) bool) (stanza, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.items) - 1; i >= 0; i-- {
		if match(b.items[i].st) {
			return b.items[i].st, true
		}
	}
	return stanza{}, false
}

// bodies counts the chat messages from the bare JID from, by body.
func (b *inbox) bodies(from string) map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[string]int{}
	for _, a := range b.items {
		if a.st.XMLName.Local == "message" && a.st.attr("type") != "error" && bare(a.st.attr("from")) == from {
			m[a.st.Body]++
		}
	}
	return m
}

// errors returns the message errors: message id → arrival.
func (b *inbox) errors() map[string]arrival {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[string]arrival{}
	for _, a := range b.items {
		if a.st.XMLName.Local == "message" && a.st.attr("type") == "error" {
			if _, dup := m[a.st.attr("id")]; !dup {
				m[a.st.attr("id")] = a
			}
		}
	}
	return m
}

func (b *inbox) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d stanzas, reading stopped by: %v", len(b.items), b.err)
	for i, a := range b.items {
		if i == 20 {
			fmt.Fprintf(&sb, "\n  ...")
			break
		}
		fmt.Fprintf(&sb, "\n  %s %v", a.at.Format("15:04:05.000"), a.st)
	}
	return sb.String()
}

// collect hands rc's reads to a goroutine that records them until the
// connection fails. What rc had queued comes first. Writes stay with the
// test.
func collect(rc *rawClient) *inbox {
	b := collectQueued(rc)
	go func() {
		for {
			st, err := rc.read()
			if err != nil {
				b.stop(err)
				return
			}
			b.add(st)
		}
	}()
	return b
}

// waitArrival waits until b holds a stanza that match accepts and that
// arrived after since, for at most d.
func waitArrival(t *testing.T, b *inbox, who, what string, since time.Time, d time.Duration, match func(stanza) bool) time.Time {
	t.Helper()
	var at time.Time
	if !pollUntil(d, func() (ok bool) { at, ok = b.first(since, match); return ok }) {
		t.Fatalf("%s never saw %s (waited %v); what it read: %v", who, what, d, b)
	}
	return at
}

// stream is a client sending numbered chat messages, each followed by a
// ping to its server: once the ping is answered, the message has been
// handled (stanzas of one stream are handled in order), i.e. acknowledged.
type stream struct {
	rc    *rawClient
	from  string // the sender's bare JID
	to    string // the recipient's bare JID
	tag   string // prefix of bodies and ids
	inbox *inbox // everything the sender reads but the ping results
	stopc chan struct{}
	done  chan struct{} // closed when sending has stopped

	mu    sync.Mutex
	sent  []time.Time // sent[i]: when message i went out
	acked []time.Time // acked[i]: when the ping after message i was answered; zero if not
	err   error       // why sending stopped early
}

// startStream makes rc send messages to the bare JID to until stop. From
// then on, the stream goes on recording what rc reads in s.inbox.
func startStream(rc *rawClient, to, tag string) *stream {
	s := &stream{rc: rc, from: bare(rc.jid), to: to, tag: tag, inbox: collectQueued(rc),
		stopc: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// collectQueued moves what rc had queued into a new inbox, and sets the
// long read timeout of a client whose reads a goroutine owns.
func collectQueued(rc *rawClient) *inbox {
	b := &inbox{}
	for _, st := range rc.queue {
		b.add(st)
	}
	rc.queue = nil
	rc.timeout = collectTimeout
	return b
}

func (s *stream) body(i int) string { return fmt.Sprintf("%s-%04d", s.tag, i) }

func (s *stream) run() {
	domain := s.from[strings.IndexByte(s.from, '@')+1:]
	tick := time.NewTicker(streamInterval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-s.stopc:
			close(s.done)
			for {
				st, err := s.rc.read()
				if err != nil {
					s.inbox.stop(err)
					return
				}
				s.inbox.add(st)
			}
		case <-tick.C:
		}
		body := s.body(i)
		s.mu.Lock()
		s.sent, s.acked = append(s.sent, time.Now()), append(s.acked, time.Time{})
		s.mu.Unlock()
		err := s.rc.write(fmt.Sprintf(`<message type='chat' id='%s' to='%s'><body>%s</body></message>`+
			`<iq type='get' id='ack-%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, body, s.to, body, body, domain))
		for err == nil {
			var st stanza
			if st, err = s.rc.read(); err != nil {
				break
			}
			if st.XMLName.Local == "iq" && st.attr("id") == "ack-"+body {
				if st.attr("type") == "result" {
					s.mu.Lock()
					s.acked[i] = time.Now()
					s.mu.Unlock()
				} else {
					s.inbox.add(st)
				}
				break
			}
			s.inbox.add(st)
		}
		if err != nil {
			s.mu.Lock()
			s.err = fmt.Errorf("message %s: %w", body, err)
			s.mu.Unlock()
			s.inbox.stop(err)
			close(s.done)
			return
		}
	}
}

// stop ends the sending and waits for the last ping's answer.
func (s *stream) stop(t *testing.T) {
	t.Helper()
	close(s.stopc)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s's server has not answered her ping for 30 s (%d messages sent)", s.from, s.counts())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Fatalf("%s's stream of messages broke off: %v", s.from, s.err)
	}
}

func (s *stream) counts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

// ackedSince counts the messages sent after since and acknowledged.
func (s *stream) ackedSince(since time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i, at := range s.sent {
		if !at.Before(since) && !s.acked[i].IsZero() {
			n++
		}
	}
	return n
}

// waitAcked waits until n messages sent after since are acknowledged.
func (s *stream) waitAcked(t *testing.T, n int, since time.Time, d time.Duration, why string) {
	t.Helper()
	if !pollUntil(d, func() bool { return s.ackedSince(since) >= n }) {
		s.mu.Lock()
		err := s.err
		s.mu.Unlock()
		t.Fatalf("%s: only %d of %s's messages acknowledged after %v, want %d (stream error: %v; sender read: %v)",
			why, s.ackedSince(since), s.from, d, n, err, s.inbox)
	}
}

// delivery is how a stream fared.
type delivery struct {
	sent, acked int
	errored     []string // answered with a message error: not acknowledged
	late        []string // errors that came after the ping was answered
	lost        []string // acknowledged, received by no client of the recipient
	dups        int      // extra copies received
	firstAck    time.Duration
	maxAckDelay time.Duration // longest wait for a ping answer
	maxAckAt    time.Duration // when (since the mark) the longest wait began
}

// check compares what s sent with what the recipient's clients got; mark is
// the kill: firstAck is how long after it the first message sent after it
// was acknowledged (without error).
func (s *stream) check(mark time.Time, boxes ...*inbox) delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := s.inbox.errors()
	got := map[string]int{}
	for _, b := range boxes {
		for body, n := range b.bodies(s.from) {
			got[body] += n
		}
	}
	d := delivery{sent: len(s.sent), firstAck: -1}
	for i, at := range s.sent {
		body, ack := s.body(i), s.acked[i]
		if e, ok := errs[body]; ok {
			d.errored = append(d.errored, body)
			if !ack.IsZero() && e.at.After(ack) {
				d.late = append(d.late, fmt.Sprintf("%s: %v", body, e.st))
			}
			continue
		}
		if ack.IsZero() {
			continue
		}
		d.acked++
		if w := ack.Sub(at); w > d.maxAckDelay {
			d.maxAckDelay, d.maxAckAt = w, at.Sub(mark)
		}
		if !at.Before(mark) && d.firstAck < 0 {
			d.firstAck = ack.Sub(mark)
		}
		if got[body] == 0 {
			d.lost = append(d.lost, body)
		}
		if got[body] > 1 {
			d.dups += got[body] - 1
		}
	}
	return d
}

// waitDelivered polls until every acknowledged message of s reached one of
// the boxes, for at most d, and returns the final account.
func (s *stream) waitDelivered(d time.Duration, mark time.Time, boxes ...*inbox) delivery {
	var res delivery
	pollUntil(d, func() bool { res = s.check(mark, boxes...); return len(res.lost) == 0 })
	return res
}

// report logs the figures of a stream and fails the test for every lost
// acknowledged message.
func (r delivery) report(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: %d messages sent, %d acknowledged, %d answered with an error, %d duplicates, "+
		"first acknowledged message sent after the kill took %v, longest ping wait %v (began %v after the kill)",
		what, r.sent, r.acked, len(r.errored), r.dups, r.firstAck.Round(time.Millisecond),
		r.maxAckDelay.Round(time.Millisecond), r.maxAckAt.Round(time.Millisecond))
	if len(r.errored) > 0 {
		t.Logf("%s: messages answered with an error: %v", what, r.errored)
	}
	if len(r.late) > 0 {
		t.Errorf("%s: %d message errors came after the server had answered the next ping (the sender took them as delivered): %v",
			what, len(r.late), r.late)
	}
	if len(r.lost) > 0 {
		t.Errorf("%s: %d acknowledged messages LOST (the sender's server answered the ping after them, the recipient never got them): %v",
			what, len(r.lost), r.lost)
	}
	switch {
	case r.firstAck < 0:
		t.Errorf("%s: no message sent after the kill was acknowledged without error", what)
	case r.firstAck > failoverMax:
		t.Errorf("%s: the first message sent after the kill was acknowledged %v after it, want at most %v",
			what, r.firstAck.Round(time.Millisecond), failoverMax)
	}
}

// TestClusterKillRecipientNode: alice on node a streams messages to bob on
// node b; node b is killed. Bob logs in again on node c and gets every
// acknowledged message he had not got yet; alice sees bob go offline. With
// node b down, a and c serve their users (login, chat, presence). Node b,
// restarted, catches up.
func TestClusterKillRecipientNode(t *testing.T) {
	c := newCluster(t)
	c.startAll()
	alice := c.nodes[0].addUser("alice", clusterPW)
	bob := c.nodes[1].addUser("bob", clusterPW)
	carol := c.nodes[2].addUser("carol", clusterPW)
	c.waitUsers(alice, bob, carol)

	a, b := c.login(0, "alice"), c.login(1, "bob")
	c.befriend(a, b, alice, bob)
	// Carol (node c) is no contact of bob's. She writes to him and he
	// answers with his presence, sent to the JID her message came from
	// (as a client learns it): she must hear of his end too.
	carolC := c.login(2, "carol")
	if err := carolC.message(bob, "hello bob, carol here"); err != nil {
		t.Fatal(err)
	}
	hello := expect(t, b, "carol's message from node c", isChat(carol, "hello bob, carol here"))
	carolOnC := collect(carolC)
	t0 := time.Now()
	if err := b.write("<presence to='" + hello.attr("from") + "'/>"); err != nil {
		t.Fatal(err)
	}
	bobOnB := collect(b)
	waitArrival(t, carolOnC, "carol on node c", "bob's directed presence", t0, stanzaWait, isPresence(bob, ""))
	s := startStream(a, bob, "to-dying-node")
	if !pollUntil(20*time.Second, func() bool { return len(bobOnB.bodies(alice)) >= 20 }) {
		t.Fatalf("bob on node b got %d of alice's messages from node a in 20 s, want 20 before the kill: %v",
			len(bobOnB.bodies(alice)), bobOnB)
	}

	killAt := time.Now()
	c.nodes[1].kill()
	t.Logf("SIGKILL node b after %d messages sent, %d received by bob", s.counts(), len(bobOnB.bodies(alice)))

	// Alice goes on sending while her node learns that bob's is gone: what
	// she sends from then on must be stored offline for him.
	var offAt time.Time
	if pollUntil(failoverMax, func() (ok bool) { offAt, ok = s.inbox.first(killAt, isPresence(bob, "unavailable")); return ok }) {
		t.Logf("alice saw bob (dead node b) go unavailable %v after the kill", offAt.Sub(killAt).Round(time.Millisecond))
	} else {
		t.Errorf("alice did not see bob's unavailable presence within %v of the death of node b, bob's node; she read: %v",
			failoverMax, s.inbox)
	}
	if pollUntil(failoverMax, func() (ok bool) { _, ok = carolOnC.first(killAt, isPresence(bob, "unavailable")); return ok }) {
		at, _ := carolOnC.first(killAt, isPresence(bob, "unavailable"))
		t.Logf("carol (bob's directed presence, no contact) saw him go unavailable %v after the kill", at.Sub(killAt).Round(time.Millisecond))
	} else {
		t.Errorf("carol, to whom bob had sent directed presence, did not see him go unavailable within %v of the death of node b; she read: %v",
			failoverMax, carolOnC)
	}
	s.waitAcked(t, 25, killAt, 20*time.Second, "after node b died")

	tryAt := time.Now()
	b3, loginAt, err := c.loginWithin(2, "bob", 30*time.Second)
	if err != nil {
		t.Fatalf("bob cannot log in on node c for 30 s (%v after node b died): %v", time.Since(killAt).Round(time.Millisecond), err)
	}
	t.Logf("bob logged in on node c %v after he began trying (%v after the kill)",
		loginAt.Sub(tryAt).Round(time.Millisecond), loginAt.Sub(killAt).Round(time.Millisecond))
	if d := loginAt.Sub(tryAt); d > failoverMax {
		t.Errorf("bob could log in on node c only after %v of retries (node b dead), want at most %v", d.Round(time.Millisecond), failoverMax)
	}
	if _, err := rosterItems(b3); err != nil {
		t.Fatalf("bob on node c: roster get: %v", err)
	}
	presAt := time.Now()
	if err := b3.write("<presence/>"); err != nil {
		t.Fatal(err)
	}
	bobOnC := collect(b3)
	s.waitAcked(t, 20, presAt, 20*time.Second, "after bob came back on node c")
	s.stop(t)

	res := s.waitDelivered(20*time.Second, killAt, bobOnB, bobOnC)
	res.report(t, "alice (node a) to bob (node b killed, then node c)")
	if len(res.lost) > 0 {
		t.Logf("bob on node b read: %v\nbob on node c read: %v", bobOnB, bobOnC)
	}

	// Node b down: the other two serve existing users.
	waitArrival(t, s.inbox, "alice on node a", "bob's available presence from node c", presAt, stanzaWait, isPresence(bob, ""))
	waitArrival(t, bobOnC, "bob on node c", "alice's available presence", time.Time{}, stanzaWait, isPresence(alice, ""))
	t0 = time.Now()
	if err := a.message(bob, "node b is down, bob"); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, bobOnC, "bob on node c", "alice's message with node b down", t0, stanzaWait, isChat(alice, "node b is down, bob"))
	if err := b3.message(alice, "I am on node c now"); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, s.inbox, "alice on node a", "bob's message from node c with node b down", t0, stanzaWait, isChat(bob, "I am on node c now"))
	cl := c.login(0, "carol")
	if err := cl.message(bob, "carol logged in on node a while node b is down"); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, bobOnC, "bob on node c", "carol's message from node a with node b down", t0, stanzaWait,
		isChat(carol, "carol logged in on node a while node b is down"))

	if p, ok := s.inbox.last(func(st stanza) bool { return st.XMLName.Local == "presence" && bare(st.attr("from")) == bob }); !ok || p.attr("type") != "" {
		t.Errorf("bob is online on node c, but the last presence of his alice read says otherwise: %v (all she read: %v)", p, s.inbox)
	}

	if len(res.lost) > 0 {
		b3.close()
		c.recheckLost(2, "bob", s, res.lost, bobOnB, bobOnC)
	}

	took := c.restart(1)
	catchUp := c.waitSameState()
	t.Logf("node b restarted: client port open after %v, same digest as the others %v later", took.Round(time.Millisecond), catchUp.Round(time.Millisecond))
}

// TestClusterKillLogLeader: the node `cluster status` names as log leader is
// killed twice (restarted in between): once while messages stream between
// users of the two survivors, once while they stream to a user who is
// offline, so that they are stored through the log during the failover.
func TestClusterKillLogLeader(t *testing.T) {
	c := newCluster(t)
	c.startAll()
	jids := []string{c.nodes[0].addUser("alice", clusterPW), c.nodes[1].addUser("bob", clusterPW),
		c.nodes[2].addUser("carol", clusterPW)}
	c.waitUsers(jids...)
	c.killLeaderWhileStreaming("alice", "bob", true)
	c.killLeaderWhileStreaming("bob", "carol", false)
}

// killLeaderWhileStreaming kills the log leader while sender, on one
// survivor, streams messages to recipient, online on the other survivor or
// offline. It checks that writes work again within failoverMax, that no
// acknowledged message is lost, and restarts the killed node.
func (c *cluster) killLeaderWhileStreaming(sender, recipient string, online bool) {
	t := c.t
	t.Helper()
	what := map[bool]string{true: "online", false: "offline"}[online]
	leader := c.logLeader()
	var surv []int
	for i := range c.nodes {
		if i != leader {
			surv = append(surv, i)
		}
	}
	t.Logf("recipient %s: log leader is node %s; %s on node %s sends to %s (node %s)",
		what, c.names[leader], sender, c.names[surv[0]], recipient, c.names[surv[1]])
	to := c.nodes[0].jid(recipient)
	snd := c.login(surv[0], sender)
	var rc *rawClient
	var boxes []*inbox
	if online {
		rc = c.login(surv[1], recipient)
		boxes = append(boxes, collect(rc))
	}
	s := startStream(snd, to, "leader-"+what)
	s.waitAcked(t, 20, time.Time{}, 20*time.Second, "before the kill")
	if online && !pollUntil(20*time.Second, func() bool { return len(boxes[0].bodies(s.from)) >= 20 }) {
		t.Fatalf("%s got %d messages from %s before the kill, want 20: %v", recipient, len(boxes[0].bodies(s.from)), sender, boxes[0])
	}

	killAt := time.Now()
	c.nodes[leader].kill()
	t.Logf("recipient %s: SIGKILL log leader node %s after %d messages", what, c.names[leader], s.counts())

	// A write through the log: an account made on one survivor is usable
	// on the other once the log took it.
	writeAt := c.writeThroughLog(surv[1], surv[0], "new-"+what, killAt)
	t.Logf("recipient %s: an account made with `casp3r user add` on survivor node %s reached node %s %v after the kill",
		what, c.names[surv[1]], c.names[surv[0]], writeAt.Sub(killAt).Round(time.Millisecond))
	if d := writeAt.Sub(killAt); d > failoverMax {
		t.Errorf("recipient %s: writes went through the log again only %v after the log leader died, want at most %v",
			what, d.Round(time.Millisecond), failoverMax)
	}
	// Stream on past the time the survivors take to notice the death (~5 s).
	from := killAt.Add(6 * time.Second)
	if writeAt.After(from) {
		from = writeAt
	}
	s.waitAcked(t, 20, from, 30*time.Second, "recipient "+what+", after writes worked again")
	s.stop(t)

	if !online {
		rc = c.login(surv[1], recipient)
		boxes = append(boxes, collect(rc))
	}
	res := s.waitDelivered(20*time.Second, killAt, boxes...)
	res.report(t, fmt.Sprintf("%s to %s (%s) while the log leader died", sender, recipient, what))
	snd.close()
	rc.close()
	if len(res.lost) > 0 {
		t.Logf("%s read: %v", recipient, boxes[len(boxes)-1])
		c.recheckLost(surv[1], recipient, s, res.lost, boxes...)
	}

	took := c.restart(leader)
	catchUp := c.waitSameState()
	t.Logf("recipient %s: killed leader node %s restarted: client port open after %v, same digest as the others %v later",
		what, c.names[leader], took.Round(time.Millisecond), catchUp.Round(time.Millisecond))
}

// writeThroughLog makes an account with `casp3r user add` on node i, retried
// until it works, and waits until node j can log it in: the log took the
// write. It returns when that happened.
func (c *cluster) writeThroughLog(i, j int, local string, since time.Time) time.Time {
	t := c.t
	t.Helper()
	if _, err := retryWrite(c.nodes[i], local, 30*time.Second); err != nil {
		t.Fatalf("`casp3r user add` on survivor node %s still fails %v after the kill: %v",
			c.names[i], time.Since(since).Round(time.Millisecond), err)
	}
	rc, at, err := c.loginWithin(j, local, 30*time.Second)
	if err != nil {
		t.Fatalf("an account made on survivor node %s cannot log in on survivor node %s %v after the kill: %v",
			c.names[i], c.names[j], time.Since(since).Round(time.Millisecond), err)
	}
	rc.close()
	return at
}

// recheckLost is a diagnosis, once messages are found lost: the recipient
// logs in once more (his other clients closed) on node i, where he was
// logged in when he missed them, and the log says how many of the lost
// messages come now (they were stored offline, but not given to him while
// he was online there) and how many never come.
func (c *cluster) recheckLost(i int, local string, s *stream, lost []string, boxes ...*inbox) {
	c.t.Helper()
	rc := c.login(i, local)
	defer rc.close()
	boxes = append(boxes, collect(rc))
	res := s.waitDelivered(10*time.Second, time.Time{}, boxes...)
	c.t.Logf("diagnosis: %s logged in again on node %s: %d of the %d lost messages came at this new login (stored offline, not given to him while he was online there), %d never came: %v",
		local, c.names[i], len(lost)-len(res.lost), len(lost), len(res.lost), res.lost)
}

// retryWrite runs `casp3r user add` for local on n until it succeeds, for at
// most d, and returns when it did. An attempt that failed but created the
// account all the same makes the next one say it exists: that counts.
func retryWrite(n *server, local string, d time.Duration) (time.Time, error) {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	failed := false
	for {
		r := n.cli(15*time.Second, "user", "add", "--data", n.dir, "--password", clusterPW, n.jid(local))
		if r.code == 0 || (failed && strings.Contains(strings.ToLower(r.stderr), "exist")) {
			return time.Now(), nil
		}
		failed = true
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("last attempt: %v", r)
		}
		<-tick.C
	}
}
