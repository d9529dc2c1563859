package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"casp3r/internal/config"
	"casp3r/internal/xmlstream"
	"casp3r/internal/xmpptest"
)

// testCA issues certificates that peers trust through s2s.ca_file.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	path string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "CASP3R test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, path: path}
}

// issue writes a certificate for domain signed by the CA over the node's
// self-signed one.
func (ca *testCA) issue(t *testing.T, cfg *config.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cfg.Domain},
		DNSNames:     []string{cfg.Domain},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(cfg.Path(cfg.TLS.Cert), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Path(cfg.TLS.Key), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.S2S.CAFile = ca.path
}

// federatedPair runs a.test and b.test, each routing the other's domain
// to its s2s port on loopback.
func federatedPair(t *testing.T, mutate func(*config.Config)) (a, b *testServer) {
	t.Helper()
	a = runServerDomain(t, "a.test", mutate)
	b = runServerDomain(t, "b.test", func(c *config.Config) {
		c.S2S.Routes = map[string]string{"a.test": a.Addr(ListenerS2S).String()}
		if mutate != nil {
			mutate(c)
		}
	})
	a.s2s.SetRoute("b.test", b.Addr(ListenerS2S).String()) // before any federation traffic
	return a, b
}

func TestFederationDialback(t *testing.T) {
	a, b := federatedPair(t, nil)
	testChatAcross(t, a, b)
}

func TestFederationSASLExternal(t *testing.T) {
	ca := newTestCA(t)
	a, b := federatedPair(t, func(c *config.Config) {
		ca.issue(t, c)
		c.S2S.Dialback = false // only valid certificates may federate
	})
	testChatAcross(t, a, b)
}

// testChatAcross: alice@a.test and bob@b.test subscribe to each other, see
// each other online, chat, and query the other server.
func testChatAcross(t *testing.T, a, b *testServer) {
	t.Helper()
	a.addUser("alice", "pw")
	b.addUser("bob", "pw")
	alice := xmpptest.Login(t, a.addr(), "a.test", "alice", "pw", "pc")
	bob := xmpptest.Login(t, b.addr(), "b.test", "bob", "pw", "phone")
	for _, c := range []*xmpptest.Client{alice, bob} {
		c.SendRaw("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
		c.Expect("roster", byID("r0"))
		c.SendRaw("<presence/>")
	}
	alice.SendRaw("<presence to='bob@b.test' type='subscribe'/>")
	bob.Expect("subscription request", isPresence("alice@a.test", "subscribe"))
	bob.SendRaw("<presence to='alice@a.test' type='subscribed'/>")
	alice.Expect("subscribed", isPresence("bob@b.test", "subscribed"))
	alice.Expect("bob online", isPresence("bob@b.test/phone", ""))
	bob.SendRaw("<presence to='alice@a.test' type='subscribe'/>")
	alice.Expect("subscription request", isPresence("bob@b.test", "subscribe"))
	alice.SendRaw("<presence to='bob@b.test' type='subscribed'/>")
	bob.Expect("alice online", isPresence("alice@a.test/pc", ""))

	alice.SendRaw("<message to='bob@b.test' type='chat'><body>hello across</body></message>")
	m := bob.Expect("message", isMessage("hello across"))
	if m.Get("from") != "alice@a.test/pc" {
		t.Fatalf("from %q", m.Get("from"))
	}
	bob.SendRaw("<message to='alice@a.test/pc' type='chat'><body>hi back</body></message>")
	alice.Expect("reply", isMessage("hi back"))

	alice.SendRaw("<iq type='get' id='p1' to='b.test'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := alice.Expect("ping", byID("p1")); r.Get("type") != "result" || r.Get("from") != "b.test" {
		t.Fatalf("remote ping: %s", r)
	}
	alice.SendRaw("<iq type='get' id='d1' to='b.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if r := alice.Expect("disco", byID("d1")); r.Get("type") != "result" {
		t.Fatalf("remote disco: %s", r)
	}
	bob.Close()
	alice.Expect("bob offline", isPresence("bob@b.test/phone", "unavailable"))
}

func TestFederationPolicy(t *testing.T) {
	tests := []struct {
		name    string
		mutateA func(*config.Config)
	}{
		{"private", func(c *config.Config) { c.Federation = config.FederationPrivate }},
		{"deny", func(c *config.Config) { c.S2S.Deny = []string{"b.test"} }},
		{"allowlist without b", func(c *config.Config) {
			c.Federation = config.FederationAllowlist
			c.S2S.Allow = []string{"c.test"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			routesA := map[string]string{}
			a := runServerDomain(t, "a.test", func(c *config.Config) {
				c.S2S.Routes = routesA
				tc.mutateA(c)
			})
			b := runServerDomain(t, "b.test", func(c *config.Config) {
				c.S2S.Routes = map[string]string{"a.test": a.Addr(ListenerS2S).String()}
			})
			routesA["b.test"] = b.Addr(ListenerS2S).String()
			a.addUser("alice", "pw")
			b.addUser("bob", "pw")
			alice := xmpptest.Login(t, a.addr(), "a.test", "alice", "pw", "pc")
			bob := xmpptest.Login(t, b.addr(), "b.test", "bob", "pw", "phone")
			alice.SendRaw("<message to='bob@b.test' id='out' type='chat'><body>out</body></message>")
			if e := alice.Expect("bounce", byID("out")); e.Child("", "error").Child(stanzaNS, "not-allowed") == nil {
				t.Fatalf("outgoing to a blocked domain: %s", e)
			}
			bob.SendRaw("<message to='alice@a.test' id='in' type='chat'><body>in</body></message>")
			e := bob.Expect("bounce", byID("in"))
			if e.Get("type") != "error" {
				t.Fatalf("incoming from a blocked domain: %s", e)
			}
			// and alice never got it
			alice.SendRaw("<iq type='get' id='p' to='a.test'><ping xmlns='urn:xmpp:ping'/></iq>")
			for {
				el := alice.Next()
				if el.Get("id") == "p" {
					break
				}
				if el.Name.Local == "message" {
					t.Fatalf("alice got %s", el)
				}
			}
		})
	}
}

// TestFederationForgedDialback connects to a.test's s2s port claiming to
// be b.test (which is real and running) with a made-up key.
func TestFederationForgedDialback(t *testing.T) {
	a, _ := federatedPair(t, nil)
	c := xmpptest.DialRaw(t, a.Addr(ListenerS2S).String(), "a.test")
	c.SendRaw("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='b.test' to='a.test' version='1.0'>")
	c.ReadServerHeader()
	c.Next() // features
	c.StartTLSServerStream("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='b.test' to='a.test' version='1.0'>")
	c.SendRaw("<db:result from='b.test' to='a.test'>0123456789abcdef</db:result>")
	r := c.Expect("dialback result", func(e *xmlstream.Element) bool { return e.Is("jabber:server:dialback", "result") })
	if r.Get("type") != "invalid" {
		t.Fatalf("forged key: %s", r)
	}
	if got := c.ExpectStreamError(); got != "not-authorized" {
		t.Fatalf("stream error %q, want not-authorized", got)
	}
}

// TestFederationSpoofedFrom: a peer sends a stanza from a domain its
// stream has not authenticated and is cut off, while the real federation
// stream keeps working.
func TestFederationSpoofedFrom(t *testing.T) {
	a, b := federatedPair(t, nil)
	a.addUser("alice", "pw")
	b.addUser("bob", "pw")
	alice := xmpptest.Login(t, a.addr(), "a.test", "alice", "pw", "pc")
	alice.SendRaw("<presence/>")
	bob := xmpptest.Login(t, b.addr(), "b.test", "bob", "pw", "phone")
	bob.SendRaw("<message to='alice@a.test' type='chat'><body>before</body></message>")
	alice.Expect("message", isMessage("before"))

	c := xmpptest.DialRaw(t, a.Addr(ListenerS2S).String(), "a.test")
	hdr := "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='evil.test' to='a.test' version='1.0'>"
	c.SendRaw(hdr)
	c.ReadServerHeader()
	c.Next()
	c.StartTLSServerStream(hdr)
	c.SendRaw("<message from='bob@b.test/phone' to='alice@a.test'><body>spoof</body></message>")
	if got := c.ExpectStreamError(); got != "invalid-from" {
		t.Fatalf("stream error %q, want invalid-from", got)
	}
	bob.SendRaw("<message to='alice@a.test' type='chat'><body>after</body></message>")
	if m := alice.Expect("message", func(e *xmlstream.Element) bool { return e.Name.Local == "message" }); m.Child("", "body").Text() != "after" {
		t.Fatalf("alice got %s", m)
	}
}

func TestFederationUnreachable(t *testing.T) {
	s := runServerDomain(t, "a.test", func(c *config.Config) {
		c.S2S.Routes = map[string]string{"gone.test": "127.0.0.1:1"}
	})
	s.addUser("alice", "pw")
	alice := xmpptest.Login(t, s.addr(), "a.test", "alice", "pw", "pc")
	alice.SendRaw("<message to='x@gone.test' id='u1' type='chat'><body>anyone?</body></message>")
	e := alice.Expect("bounce", byID("u1"))
	if e.Child("", "error").Child(stanzaNS, "remote-server-not-found") == nil {
		t.Fatalf("got %s", e)
	}
	if !strings.Contains(e.String(), "gone.test") {
		t.Logf("bounce text: %s", e)
	}
}

// TestFederationLimitedUser: a limited account is cut off from other
// servers in both directions, while a member on the same server is not.
func TestFederationLimitedUser(t *testing.T) {
	a, b := federatedPair(t, nil)
	a.addUser("kid", "pw")
	a.addUser("parent", "pw")
	b.addUser("bob", "pw")
	if err := a.db.SetRole(t.Context(), "kid", "limited"); err != nil {
		t.Fatal(err)
	}
	kid := xmpptest.Login(t, a.addr(), "a.test", "kid", "pw", "pc")
	kid.SendRaw("<presence/>")
	parent := xmpptest.Login(t, a.addr(), "a.test", "parent", "pw", "pc")
	parent.SendRaw("<presence/>")
	bob := xmpptest.Login(t, b.addr(), "b.test", "bob", "pw", "phone")

	kid.SendRaw("<message to='bob@b.test' id='k1' type='chat'><body>hi</body></message>")
	if e := kid.Expect("bounce", byID("k1")); e.Child("", "error").Child(stanzaNS, "not-allowed") == nil {
		t.Fatalf("limited user sending out: %s", e)
	}
	bob.SendRaw("<message to='kid@a.test' id='b1' type='chat'><body>hi kid</body></message>")
	if e := bob.Expect("bounce", byID("b1")); e.Child("", "error").Child(stanzaNS, "not-allowed") == nil {
		t.Fatalf("remote user writing to a limited user: %s", e)
	}
	bob.SendRaw("<message to='parent@a.test' type='chat'><body>hi parent</body></message>")
	parent.Expect("message", isMessage("hi parent"))
	kid.SendRaw("<message to='parent@a.test' type='chat'><body>local is fine</body></message>")
	parent.Expect("local message", isMessage("local is fine"))
}

// TestFederationDenyWhileRunning: denying a domain in storage, as
// `casp3r federation deny` does while the server runs, cuts off the
// streams that domain authenticated before: our users' stanzas bounce
// within about a second, and nothing more arrives from it.
func TestFederationDenyWhileRunning(t *testing.T) {
	a, b := federatedPair(t, nil)
	a.addUser("alice", "pw")
	b.addUser("bob", "pw")
	alice := xmpptest.Login(t, a.addr(), "a.test", "alice", "pw", "pc")
	alice.SendRaw("<presence/>")
	bob := xmpptest.Login(t, b.addr(), "b.test", "bob", "pw", "phone")
	bob.SendRaw("<presence/>")
	alice.SendRaw("<message to='bob@b.test' type='chat'><body>before out</body></message>")
	bob.Expect("message", isMessage("before out"))
	bob.SendRaw("<message to='alice@a.test' type='chat'><body>before in</body></message>")
	alice.Expect("message", isMessage("before in"))

	// From here on one goroutine reads bob's stream.
	bobIn := make(chan *xmlstream.Element, 256)
	go func() {
		defer close(bobIn)
		for {
			el, err := bob.Read()
			if err != nil {
				return
			}
			bobIn <- el
		}
	}()

	if err := a.db.SetFederationRule(t.Context(), "b.test", "deny"); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		// A message, then a ping to a.test: its answer comes after the
		// message's bounce, if there is one.
		alice.SendRaw(fmt.Sprintf("<message to='bob@b.test' id='o%d' type='chat'><body>after out</body></message>"+
			"<iq type='get' id='p%d' to='a.test'><ping xmlns='urn:xmpp:ping'/></iq>", i, i))
		refused := false
		for {
			el := alice.Next()
			if el.Get("id") == fmt.Sprintf("o%d", i) {
				if el.Child("", "error").Child(stanzaNS, "not-allowed") == nil {
					t.Fatalf("alice's message after the deny: %s", el)
				}
				refused = true
			}
			if el.Get("id") == fmt.Sprintf("p%d", i) {
				break
			}
		}
		if refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice still reaches b.test 5s after the deny")
		}
		<-tick.C
	}

	// bob writes (on the stream b.test authenticated before the deny)
	// until b.test bounces a message: a.test cut the stream off and
	// refused the next one.
	send := func(i int) {
		bob.SendRaw(fmt.Sprintf("<message to='alice@a.test' id='i%d' type='chat'><body>after in</body></message>", i))
	}
	send(0)
	for i, timeout := 1, time.After(xmpptest.Timeout); ; {
		select {
		case el, ok := <-bobIn:
			if !ok {
				t.Fatal("no bounce for bob's messages after the deny (bob's stream ended)")
			}
			if el.Name.Local == "message" && el.Get("type") == "error" && strings.HasPrefix(el.Get("id"), "i") {
				t.Logf("bob's message %s after the deny bounced: %s", el.Get("id"), el)
				goto bounced
			}
		case <-tick.C:
			send(i)
			i++
		case <-timeout:
			t.Fatal("no bounce for bob's messages after the deny")
		}
	}
bounced:
	alice.SendRaw("<iq type='get' id='last' to='a.test'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := alice.Next()
		if el.Get("id") == "last" {
			break
		}
		if el.Name.Local == "message" {
			t.Fatalf("alice got %s after b.test was denied", el)
		}
	}
}
