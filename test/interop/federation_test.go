//go:build integration

package interop

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"casp3r/test/peers"
)

// Federation with real servers: CASP3R (casp3r serve) against Prosody and
// ejabberd (test/peers), users on both sides driven by slixmpp
// (testdata/fedclient.py). Every server binds its own 127.0.0.x; the peers
// find CASP3R through their private hosts file, CASP3R finds them through
// [s2s.routes]. Peers always connect out to port 5269, so CASP3R's s2s
// listens there, on its own address.

const (
	// fedPW is the password of every CASP3R account these tests make.
	fedPW = "fed-Secret-1"
	// fedWait bounds each wait for a federation outcome inside a poll.
	fedWait = 5 * time.Second
	// logWait bounds the wait for a line in a server's log.
	logWait = 10 * time.Second
)

// casp3rPorts are the ports a federating CASP3R listens on.
var casp3rPorts = []int{5222, 5223, 5269, 5270, 5443}

// fedOptions changes the config newFedServer writes.
type fedOptions struct {
	domain string
	routes map[string]string // [s2s.routes]: domain → host:port
	// ca, if set, issues the server's certificate (replacing the
	// self-signed one init made) and is the s2s ca_file; dialback is off.
	ca          *peers.CA
	federation  string // mode; "" leaves the default (open)
	allow, deny []string
}

// newFedServer runs `casp3r init` for o.domain on host and edits the config
// for federation. The server is not started.
func newFedServer(t *testing.T, host string, o fedOptions) *server {
	t.Helper()
	s := &server{t: t, opts: serverOptions{bin: testEnv.bin}, host: host, domain: o.domain,
		dir: filepath.Join(t.TempDir(), "data")}
	if r := s.cli(cmdTimeout, "init", "--data", s.dir, "--domain", s.domain, "--listen", s.host); r.code != 0 {
		t.Fatalf("casp3r init: %v", r)
	}
	t.Cleanup(s.cleanup)
	cfgPath := filepath.Join(s.dir, "casp3r.toml")
	var cfg map[string]any
	if _, err := toml.DecodeFile(cfgPath, &cfg); err != nil {
		t.Fatalf("read config written by casp3r init: %v", err)
	}
	table := func(name string) map[string]any {
		m, ok := cfg[name].(map[string]any)
		if !ok {
			t.Fatalf("config written by casp3r init has no [%s] table", name)
		}
		return m
	}
	s2s := table("s2s")
	routes := map[string]any{}
	for d, addr := range o.routes {
		routes[d] = addr
	}
	s2s["routes"] = routes
	s2s["allow"] = append([]string{}, o.allow...)
	s2s["deny"] = append([]string{}, o.deny...)
	if o.federation != "" {
		cfg["federation"] = o.federation
	}
	if o.ca != nil {
		crt, key := o.ca.Issue(t, t.TempDir(), o.domain)
		tlsT := table("tls")
		copyFile(t, crt, filepath.Join(s.dir, tlsT["cert"].(string)))
		copyFile(t, key, filepath.Join(s.dir, tlsT["key"].(string)))
		s2s["ca_file"] = o.ca.CertPath()
		s2s["dialback"] = false
	}
	table("log")["level"] = "debug" // the outgoing side logs how it authenticated at debug
	f, err := os.Create(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := toml.NewEncoder(f).Encode(cfg); err != nil {
		t.Fatalf("write config: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if r := s.cli(cmdTimeout, "check-config", "--data", s.dir); r.code != 0 {
		t.Fatalf("casp3r check-config after the test's edits: %v", r)
	}
	c2s := table("c2s")
	s.c2s, s.tls, s.https = toInt(c2s["port"]), toInt(c2s["direct_tls_port"]), toInt(table("https")["port"])
	return s
}

func toInt(v any) int {
	n, _ := v.(int64)
	return int(n)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startFed starts the server and waits for its s2s port too.
func (s *server) startFed() {
	s.t.Helper()
	s.start()
	s.waitPort(5269)
}

// addUserRole creates an account with a role (`casp3r user add --role`).
func (s *server) addUserRole(local, role string) string {
	s.t.Helper()
	r := s.cli(cmdTimeout, "user", "add", "--data", s.dir, "--password", fedPW, "--role", role, s.jid(local))
	if r.code != 0 {
		s.t.Fatalf("casp3r user add --role %s %s: %v", role, s.jid(local), r)
	}
	return s.jid(local)
}

// log is the server's log so far.
func (s *server) log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	return string(b)
}

// startFedClient runs testdata/fedclient.py for jid on host's c2s port 5222.
func startFedClient(t *testing.T, host, jid, password string) *clientProc {
	t.Helper()
	py := needPython(t)
	return startClient(t, "slixmpp "+jid, nil, py, filepath.Join("testdata", "fedclient.py"),
		"--jid", jid, "--password", password, "--host", host, "--port", "5222",
		"--max-time", strconv.Itoa(clientMaxTime))
}

var fedTag atomic.Int64

// query sends a fedclient.py query command and returns its answer, failing
// the test unless the answer is a want event.
func (c *clientProc) query(want string, cmd map[string]string) event {
	c.t.Helper()
	tag := "q" + strconv.FormatInt(fedTag.Add(1), 10)
	cmd["tag"] = tag
	c.send(cmd)
	e := c.waitFor(fmt.Sprintf("the answer to %s %s", cmd["cmd"], cmd["to"]), func(e event) bool {
		return e.str("tag") == tag && e.str("event") != "sent"
	})
	if e.str("event") != want {
		c.t.Fatalf("%s: %s %s answered %v, want a %q event", c.name, cmd["cmd"], cmd["to"], e, want)
	}
	return e
}

// seen reports whether the client has printed an event pred accepts.
func (c *clientProc) seen(pred func(event) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if pred(e) {
			return true
		}
	}
	return false
}

// pollUntil checks cond every 20 ms until it holds or d has passed, and
// reports whether it held.
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

func isMessage(from, body string) func(event) bool {
	return func(e event) bool {
		return e.str("event") == "message" && bare(e.str("from")) == from && e.str("body") == body
	}
}

func isMessageError(id string) func(event) bool {
	return func(e event) bool { return e.str("event") == "message_error" && e.str("id") == id }
}

// sendID sends a chat message with a chosen id.
func (c *clientProc) sendID(to, id, body string) {
	c.t.Helper()
	c.send(map[string]string{"cmd": "send", "to": to, "id": id, "body": body})
}

// waitLog polls a server's log until it contains want.
func waitLog(t *testing.T, who string, log func() string, want string) {
	t.Helper()
	deadline := time.Now().Add(logWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(log(), want) {
		if time.Now().After(deadline) {
			t.Errorf("%s log lacks %q after %v", who, want, logWait)
			return
		}
		<-tick.C
	}
}

// waitLogRE polls a server's log until a line matches re.
func waitLogRE(t *testing.T, who string, log func() string, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(logWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !re.MatchString(log()) {
		if time.Now().After(deadline) {
			t.Errorf("%s log has no line matching %q after %v", who, re, logWait)
			return
		}
		<-tick.C
	}
}

// peerKind is Prosody or ejabberd, with the log lines that show how its s2s
// streams with CASP3R authenticated (both directions).
type peerKind struct {
	name     string
	domain   string
	start    func(testing.TB, peers.Options) *peers.Peer
	dialback func(casp3r string) []string
	external func(casp3r string) []string
}

var (
	prosodyKind = peerKind{
		name: "prosody", domain: "prosody.test", start: peers.StartProsody,
		dialback: func(c string) []string {
			return []string{
				"sent dialback key on outgoing s2s stream", // Prosody → CASP3R
				"verified dialback key... it is valid",     // CASP3R asked Prosody about Prosody's key
				"asking " + c + " if key",                  // CASP3R → Prosody
			}
		},
		external: func(c string) []string {
			return []string{"SASL EXTERNAL with " + c + " succeeded", "Accepting SASL EXTERNAL identity from " + c}
		},
	}
	ejabberdKind = peerKind{
		name: "ejabberd", domain: "ejabberd.test", start: peers.StartEjabberd,
		dialback: func(c string) []string {
			return []string{
				"Accepted inbound s2s dialback authentication " + c + " -> ejabberd.test",
				"Accepted outbound s2s dialback authentication ejabberd.test -> " + c,
			}
		},
		external: func(c string) []string {
			return []string{
				"Accepted inbound s2s EXTERNAL authentication " + c + " -> ejabberd.test",
				"Accepted outbound s2s EXTERNAL authentication ejabberd.test -> " + c,
			}
		},
	}
)

// ourAuthLines match CASP3R's log lines for a peer domain authenticated on
// an incoming stream and for us authenticated on the outgoing one.
func ourAuthLines(peerDomain string, external bool) []*regexp.Regexp {
	q := regexp.QuoteMeta(peerDomain)
	if external {
		return []*regexp.Regexp{
			regexp.MustCompile(`msg="federation peer authenticated".*domain=` + q + ` method="SASL EXTERNAL"`),
			regexp.MustCompile(`msg="federation stream authenticated".*out=` + q + `.*method="SASL EXTERNAL"`),
		}
	}
	return []*regexp.Regexp{
		regexp.MustCompile(`msg="federation peer authenticated".*domain=` + q + ` method=dialback`),
		regexp.MustCompile(`msg="federation stream authenticated".*out=` + q + `.*method=dialback`),
	}
}

// TestFederationWithPeers: a CASP3R user and a Prosody or ejabberd user
// become contacts, see each other online, chat both ways and query each
// other's server, over s2s authenticated with dialback (self-signed
// certificates everywhere) or with SASL EXTERNAL (certificates from a
// common CA, dialback off on CASP3R).
func TestFederationWithPeers(t *testing.T) {
	t.Parallel()
	for _, kind := range []peerKind{prosodyKind, ejabberdKind} {
		for _, withCA := range []bool{false, true} {
			name := kind.name + "/self-signed-dialback"
			if withCA {
				name = kind.name + "/CA-SASL-EXTERNAL"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testFederationWithPeer(t, kind, withCA)
			})
		}
	}
}

func testFederationWithPeer(t *testing.T, kind peerKind, withCA bool) {
	const ourDomain = "casp3r.test"
	needPython(t)
	ourHost := allocHost(t, casp3rPorts...)
	peerHost := allocHost(t, 5222, 5269)
	hosts := peers.NewHosts(t)
	hosts.Add(ourDomain, ourHost)
	var ca *peers.CA
	if withCA {
		ca = peers.NewCA(t)
	}
	s := newFedServer(t, ourHost, fedOptions{
		domain: ourDomain,
		routes: map[string]string{kind.domain: peerHost + ":5269"},
		ca:     ca,
	})
	carol := s.addUser("carol", fedPW)
	s.startFed()
	p := kind.start(t, peers.Options{Addr: peerHost, Domain: kind.domain, Users: []string{"alice"}, Hosts: hosts, CA: ca})
	alice := p.JID("alice")

	c := startFedClient(t, ourHost, carol, fedPW)
	a := startFedClient(t, peerHost, alice, peers.Password)
	c.waitEvent("session", nil)
	a.waitEvent("session", nil)
	c.query("vcard_set", map[string]string{"cmd": "vcard_set", "fn": "Carol Casper", "nick": "carol-on-a-pi"})

	// The subscription handshake, each side asking, the other approving.
	c.send(map[string]string{"cmd": "subscribe", "to": alice})
	a.send(map[string]string{"cmd": "subscribe", "to": carol})
	for _, x := range []struct {
		c    *clientProc
		peer string
	}{{c, alice}, {a, carol}} {
		x.c.waitFor(x.peer+" in a roster push with subscription both", rosterShows("roster_push", x.peer, "both"))
		x.c.waitEvent("presence", map[string]string{"from": x.peer, "type": "available"})
	}

	tag := rand.Text()[:8]
	c.send(map[string]string{"cmd": "send", "to": alice, "body": "c2p " + tag})
	a.waitFor("carol's message", isMessage(carol, "c2p "+tag))
	a.send(map[string]string{"cmd": "send", "to": carol, "body": "p2c " + tag})
	c.waitFor("alice's message", isMessage(alice, "p2c "+tag))

	// The peer's user queries CASP3R and its user.
	v := a.query("vcard", map[string]string{"cmd": "vcard_get", "to": carol})
	if v.str("fn") != "Carol Casper" || v.str("nick") != "carol-on-a-pi" {
		t.Errorf("%s fetched %s's vCard as FN %q NICKNAME %q, want %q %q", alice, carol,
			v.str("fn"), v.str("nick"), "Carol Casper", "carol-on-a-pi")
	}
	checkDisco(t, a.query("disco_info", map[string]string{"cmd": "disco_info", "to": ourDomain}), ourDomain,
		"urn:xmpp:ping", "vcard-temp")
	a.query("pong", map[string]string{"cmd": "ping_to", "to": ourDomain})

	// And CASP3R's user queries the peer.
	c.query("pong", map[string]string{"cmd": "ping_to", "to": kind.domain})
	checkDisco(t, c.query("disco_info", map[string]string{"cmd": "disco_info", "to": kind.domain}), kind.domain,
		"urn:xmpp:ping")

	c.quit()
	a.waitEvent("presence", map[string]string{"from": carol, "type": "unavailable"})
	a.quit()

	// How the s2s streams authenticated, as each side tells it.
	want, notWant := kind.dialback(ourDomain), kind.external(ourDomain)
	if withCA {
		want, notWant = notWant, want
	}
	for _, w := range want {
		waitLog(t, kind.name, p.Log, w)
	}
	for _, re := range ourAuthLines(kind.domain, withCA) {
		waitLogRE(t, "casp3r", s.log, re)
	}
	peerLog, ourLog := p.Log(), s.log()
	for _, w := range notWant {
		if strings.Contains(peerLog, w) {
			t.Errorf("%s log shows %q", kind.name, w)
		}
	}
	for _, re := range ourAuthLines(kind.domain, !withCA) {
		if re.MatchString(ourLog) {
			t.Errorf("casp3r log has a line matching %q", re)
		}
	}
}

// checkDisco checks a disco#info answer from domain: a server/im identity
// and the features named.
func checkDisco(t *testing.T, e event, domain string, features ...string) {
	t.Helper()
	if got := e.str("from"); got != domain {
		t.Errorf("disco#info of %s answered from %q", domain, got)
	}
	ids, _ := e["identities"].([]any)
	server := false
	for _, id := range ids {
		if f, _ := id.([]any); len(f) >= 2 && f[0] == "server" && f[1] == "im" {
			server = true
		}
	}
	if !server {
		t.Errorf("disco#info of %s lacks identity server/im: %v", domain, e)
	}
	have, _ := e["features"].([]any)
	for _, f := range features {
		found := false
		for _, h := range have {
			found = found || h == f
		}
		if !found {
			t.Errorf("disco#info of %s lacks feature %s: %v", domain, f, have)
		}
	}
}

// policyEnv is one CASP3R server of TestFederationPolicy and the Prosody
// they all share.
type policyEnv struct {
	s     *server
	peer  *peers.Peer
	carol string // a member on CASP3R
	alice string // the peer's user of this case
}

// TestFederationPolicy: the federation policy and the limited role against
// a real peer. One Prosody serves every case; each case has a CASP3R of its
// own (a domain and an address of its own, all in Prosody's hosts file
// before it starts), and runs in parallel with the others.
func TestFederationPolicy(t *testing.T) {
	t.Parallel()
	needPython(t)
	const peerDomain = "prosody.test"
	cases := []struct {
		name   string
		domain string
		opts   fedOptions
		run    func(t *testing.T, e *policyEnv)
	}{
		{"private", "private.casp3r.test", fedOptions{federation: "private"}, testCutOff},
		{"denylist", "deny.casp3r.test", fedOptions{federation: "denylist", deny: []string{peerDomain}}, testCutOff},
		{"allowlist", "allow.casp3r.test", fedOptions{federation: "allowlist", allow: []string{"elsewhere.test"}}, testCutOff},
		{"deny-while-running", "runtime.casp3r.test", fedOptions{}, testDenyWhileRunning},
		{"limited-user", "limited.casp3r.test", fedOptions{}, testLimitedUser},
	}
	hosts := peers.NewHosts(t)
	ourHosts := make([]string, len(cases))
	users := make([]string, len(cases))
	for i, tc := range cases {
		ourHosts[i] = allocHost(t, casp3rPorts...)
		hosts.Add(tc.domain, ourHosts[i])
		users[i] = "alice-" + tc.name
	}
	peerHost := allocHost(t, 5222, 5269)
	p := peers.StartProsody(t, peers.Options{Addr: peerHost, Domain: peerDomain, Users: users, Hosts: hosts})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.opts
			o.domain = tc.domain
			o.routes = map[string]string{peerDomain: peerHost + ":5269"}
			s := newFedServer(t, ourHosts[i], o)
			e := &policyEnv{s: s, peer: p, carol: s.addUser("carol", fedPW), alice: p.JID(users[i])}
			tc.run(t, e)
		})
	}
}

// clients starts the server and logs carol and alice in.
func (e *policyEnv) clients(t *testing.T) (c, a *clientProc) {
	t.Helper()
	e.s.startFed()
	c = startFedClient(t, e.s.host, e.carol, fedPW)
	a = startFedClient(t, e.peer.Addr, e.alice, peers.Password)
	c.waitEvent("session", nil)
	a.waitEvent("session", nil)
	return c, a
}

// Prosody's answer to its user when CASP3R refuses the s2s stream it opens
// (stream error policy-violation): Prosody 0.12 bounces what waited for the
// stream with remote-server-timeout and the stream error in the text.
const (
	prosodyRefusedCondition = "remote-server-timeout"
	prosodyRefusedText      = "policy-violation"
)

// ourPolicyClose is in CASP3R's log line ("federation stream error") when
// it refuses or cuts off an incoming s2s stream by policy.
const ourPolicyClose = "condition=policy-violation"

// testCutOff: with the peer's domain refused by the config, neither user
// reaches the other.
func testCutOff(t *testing.T, e *policyEnv) {
	c, a := e.clients(t)
	checkCutOff(t, c, e.carol, a, e.alice, "cut", prosodyRefused)
	if !strings.Contains(e.s.log(), ourPolicyClose) {
		t.Errorf("casp3r log does not show the refused stream (%s)", ourPolicyClose)
	}
	c.quit()
	a.quit()
}

// prosodyRefused checks the error Prosody gives its user for a message to
// a server that refused Prosody's stream.
func prosodyRefused(e event) error {
	if e.str("condition") != prosodyRefusedCondition || !strings.Contains(e.str("text"), prosodyRefusedText) {
		return fmt.Errorf("got %s (%q), want %s with %q in the text", e.str("condition"), e.str("text"),
			prosodyRefusedCondition, prosodyRefusedText)
	}
	return nil
}

// ourBounce checks for CASP3R's own not-allowed bounce, relayed by the peer.
func ourBounce(e event) error {
	if e.str("condition") != "not-allowed" {
		return fmt.Errorf("got %s (%q), want not-allowed (CASP3R's bounce)", e.str("condition"), e.str("text"))
	}
	return nil
}

// checkCutOff checks that ours (on CASP3R) and theirs (on the peer) cannot
// write to each other: ours gets not-allowed from CASP3R at once; theirs
// gets an error that checkIn accepts, and the message never arrives.
func checkCutOff(t *testing.T, ours *clientProc, oursJID string, theirs *clientProc, theirsJID, id string, checkIn func(event) error) {
	t.Helper()
	out, in := id+"-out", id+"-in"
	ours.sendID(theirsJID, out, "out "+id)
	if e := ours.waitFor("the error for "+out, isMessageError(out)); e.str("condition") != "not-allowed" {
		t.Errorf("%s writing to %s: error %v, want not-allowed", oursJID, theirsJID, e)
	}
	theirs.sendID(oursJID, in, "in "+id)
	e := theirs.waitFor("the error for "+in, isMessageError(in))
	if err := checkIn(e); err != nil {
		t.Errorf("%s writing to %s: %v", theirsJID, oursJID, err)
	}
	ours.ping() // CASP3R has handled everything before
	if ours.seen(isMessage(theirsJID, "in "+id)) {
		t.Errorf("%s got the message from %s, which the policy refuses", oursJID, theirsJID)
	}
	if theirs.seen(isMessage(oursJID, "out "+id)) {
		t.Errorf("%s got the message from %s, which the policy refuses", theirsJID, oursJID)
	}
}

// testDenyWhileRunning: users chat across, then the admin denies the peer's
// domain with the CLI while the server runs.
func testDenyWhileRunning(t *testing.T, e *policyEnv) {
	c, a := e.clients(t)
	c.send(map[string]string{"cmd": "send", "to": e.alice, "body": "before deny, out"})
	a.waitFor("carol's message", isMessage(e.carol, "before deny, out"))
	a.send(map[string]string{"cmd": "send", "to": e.carol, "body": "before deny, in"})
	c.waitFor("alice's message", isMessage(e.alice, "before deny, in"))

	if r := e.s.cli(cmdTimeout, "federation", "deny", "--data", e.s.dir, "prosody.test"); r.code != 0 {
		t.Fatalf("casp3r federation deny prosody.test: %v", r)
	}
	denied := time.Now()
	// Out: carol writes until CASP3R refuses (it reads the rules again
	// within a second).
	for i := 0; ; i++ {
		id, body := fmt.Sprintf("rt-out-%d", i), fmt.Sprintf("after deny, out %d", i)
		c.sendID(e.alice, id, body)
		pollUntil(fedWait, func() bool { return c.seen(isMessageError(id)) || a.seen(isMessage(e.carol, body)) })
		if c.seen(isMessageError(id)) {
			if ev := c.waitFor("the error", isMessageError(id)); ev.str("condition") != "not-allowed" {
				t.Errorf("after deny, carol's message bounced with %v, want not-allowed", ev)
			}
			break
		}
		if !a.seen(isMessage(e.carol, body)) {
			t.Fatalf("carol's message %s neither arrived nor bounced within %v", id, fedWait)
		}
		if time.Since(denied) > 3*time.Second {
			t.Fatalf("carol still reaches %s %v after `casp3r federation deny`", e.alice, time.Since(denied))
		}
	}
	t.Logf("carol's messages refused %v after the deny", time.Since(denied).Round(time.Millisecond))

	// In: the rule is in force now (the refusal above read it), so nothing
	// from prosody.test may arrive, not even on the stream it opened
	// before. CASP3R closes that stream at its next stanza (stream error
	// policy-violation); Prosody loses that stanza without a word (it had
	// sent it) and bounces the next, for which it must open a new stream,
	// which CASP3R refuses.
	var ids []string
	bounced := ""
	for i := 0; i < 5 && bounced == ""; i++ {
		id, body := fmt.Sprintf("rt-in-%d", i), fmt.Sprintf("after deny, in %d", i)
		ids = append(ids, id)
		closes := strings.Count(e.s.log(), ourPolicyClose)
		a.sendID(e.carol, id, body)
		// Wait for this message's fate: arrived (a failure), bounced (the
		// error may also be for an earlier message, which Prosody bounces
		// once its new stream is refused), or lost with our stream close.
		pollUntil(fedWait, func() bool {
			return anyBounced(a, ids) != "" || c.seen(isMessage(e.alice, body))
		})
		if c.seen(isMessage(e.alice, body)) {
			t.Fatalf("carol got %q from %s after prosody.test was denied", body, e.alice)
		}
		if bounced = anyBounced(a, ids); bounced != "" {
			break
		}
		if strings.Count(e.s.log(), ourPolicyClose) == closes {
			t.Fatalf("after deny, %s's message %d neither arrived, nor bounced, nor made CASP3R close a stream within %v",
				e.alice, i+1, fedWait)
		}
		t.Logf("after deny, %s's message %d made CASP3R close prosody.test's stream", e.alice, i+1)
	}
	if bounced == "" {
		t.Fatalf("%s never got an error writing to carol after the deny", e.alice)
	}
	if err := prosodyRefused(a.waitFor("the error", isMessageError(bounced))); err != nil {
		t.Errorf("after deny, %s writing to carol: %v", e.alice, err)
	}
	t.Logf("after deny, %s's message %s bounced", e.alice, bounced)
	c.ping()
	if c.seen(func(ev event) bool {
		return ev.str("event") == "message" && strings.HasPrefix(ev.str("body"), "after deny, in")
	}) {
		t.Errorf("carol got a message from %s sent after the deny", e.alice)
	}
	c.quit()
	a.quit()
}

// anyBounced returns the first of ids for which c got a message error.
func anyBounced(c *clientProc, ids []string) string {
	for _, id := range ids {
		if c.seen(isMessageError(id)) {
			return id
		}
	}
	return ""
}

// testLimitedUser: a limited account reaches no other server and no other
// server reaches it, while a member chats across.
func testLimitedUser(t *testing.T, e *policyEnv) {
	kid := e.s.addUserRole("kid", "limited")
	c, a := e.clients(t)
	k := startFedClient(t, e.s.host, kid, fedPW)
	k.waitEvent("session", nil)

	checkCutOff(t, k, kid, a, e.alice, "kid", ourBounce)

	c.send(map[string]string{"cmd": "send", "to": e.alice, "body": "member out"})
	a.waitFor("carol's message", isMessage(e.carol, "member out"))
	a.send(map[string]string{"cmd": "send", "to": e.carol, "body": "member in"})
	c.waitFor("alice's message", isMessage(e.alice, "member in"))
	k.send(map[string]string{"cmd": "send", "to": e.carol, "body": "local is fine"})
	c.waitFor("kid's local message", isMessage(kid, "local is fine"))
	k.quit()
	c.quit()
	a.quit()
}
