package sasl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

// clientCB says how the test client binds: "" none ('n'), "y" supports
// binding but saw no -PLUS, or a binding type computed from the client's
// own view of the connection.
func clientConversation(t *testing.T, c *scram.Client, cb string, cs *tls.ConnectionState) *scram.ClientConversation {
	t.Helper()
	switch cb {
	case "":
		return c.NewConversation()
	case "y":
		return c.NewConversationAdvertisingChannelBinding()
	case TLSExporter:
		b, err := scram.NewTLSExporterBinding(cs)
		if err != nil {
			t.Fatalf("client exporter binding: %v", err)
		}
		return c.NewConversationWithChannelBinding(b)
	case TLSServerEndPoint:
		b, err := scram.NewTLSServerEndpointBinding(cs)
		if err != nil {
			t.Fatalf("client end-point binding: %v", err)
		}
		return c.NewConversationWithChannelBinding(b)
	}
	t.Fatalf("unknown cb %q", cb)
	return nil
}

func TestSCRAM(t *testing.T) {
	accts := newAccounts(t, "alice", "correct horse", "bob", "hunter2")
	cert, leaf := ecdsaCert(t)
	tests := []struct {
		name     string
		mech     string
		tls      uint16 // 0: no TLS
		cb       string
		user     string
		pass     string
		authzID  string
		wantUser string
		wantCond string
	}{
		{name: "sha1 no tls", mech: ScramSHA1, user: "alice", pass: "correct horse", wantUser: "alice"},
		{name: "sha256 no tls", mech: ScramSHA256, user: "alice", pass: "correct horse", wantUser: "alice"},
		{name: "sha256 no tls y flag", mech: ScramSHA256, cb: "y", user: "bob", pass: "hunter2", wantUser: "bob"},
		{name: "sha256 tls13 n flag", mech: ScramSHA256, tls: tls.VersionTLS13, user: "alice", pass: "correct horse", wantUser: "alice"},
		{name: "sha1 tls12 n flag", mech: ScramSHA1, tls: tls.VersionTLS12, user: "alice", pass: "correct horse", wantUser: "alice"},
		{name: "sha256-plus exporter tls13", mech: ScramSHA256Plus, tls: tls.VersionTLS13, cb: TLSExporter, user: "alice", pass: "correct horse", wantUser: "alice"},
		{name: "sha256-plus exporter tls12", mech: ScramSHA256Plus, tls: tls.VersionTLS12, cb: TLSExporter, user: "alice", pass: "correct horse", wantUser: "alice"},
		{name: "sha256-plus end-point tls13", mech: ScramSHA256Plus, tls: tls.VersionTLS13, cb: TLSServerEndPoint, user: "alice", pass: "correct horse", wantUser: "alice"},
		{name: "sha256-plus end-point tls12", mech: ScramSHA256Plus, tls: tls.VersionTLS12, cb: TLSServerEndPoint, user: "alice", pass: "correct horse", wantUser: "alice"},
		{name: "sha1-plus exporter tls13", mech: ScramSHA1Plus, tls: tls.VersionTLS13, cb: TLSExporter, user: "bob", pass: "hunter2", wantUser: "bob"},
		{name: "sha1-plus exporter tls12", mech: ScramSHA1Plus, tls: tls.VersionTLS12, cb: TLSExporter, user: "bob", pass: "hunter2", wantUser: "bob"},
		{name: "sha1-plus end-point tls13", mech: ScramSHA1Plus, tls: tls.VersionTLS13, cb: TLSServerEndPoint, user: "bob", pass: "hunter2", wantUser: "bob"},
		{name: "sha1-plus end-point tls12", mech: ScramSHA1Plus, tls: tls.VersionTLS12, cb: TLSServerEndPoint, user: "bob", pass: "hunter2", wantUser: "bob"},
		{name: "authzid own jid", mech: ScramSHA256Plus, tls: tls.VersionTLS13, cb: TLSExporter, user: "alice", pass: "correct horse", authzID: "alice@example.org", wantUser: "alice"},

		{name: "wrong password", mech: ScramSHA256, user: "alice", pass: "wrong", wantCond: NotAuthorized},
		{name: "wrong password plus", mech: ScramSHA1Plus, tls: tls.VersionTLS13, cb: TLSExporter, user: "alice", pass: "wrong", wantCond: NotAuthorized},
		{name: "unknown user", mech: ScramSHA256, user: "mallory", pass: "correct horse", wantCond: NotAuthorized},
		{name: "unknown user plus", mech: ScramSHA256Plus, tls: tls.VersionTLS12, cb: TLSServerEndPoint, user: "mallory", pass: "x", wantCond: NotAuthorized},
		{name: "downgrade y flag tls13", mech: ScramSHA256, tls: tls.VersionTLS13, cb: "y", user: "alice", pass: "correct horse", wantCond: NotAuthorized},
		{name: "downgrade y flag tls12 sha1", mech: ScramSHA1, tls: tls.VersionTLS12, cb: "y", user: "alice", pass: "correct horse", wantCond: NotAuthorized},
		{name: "plus without binding", mech: ScramSHA256Plus, tls: tls.VersionTLS13, user: "alice", pass: "correct horse", wantCond: MalformedRequest},
		{name: "binding with plain mech", mech: ScramSHA256, tls: tls.VersionTLS13, cb: TLSExporter, user: "alice", pass: "correct horse", wantCond: MalformedRequest},
		{name: "authzid other user", mech: ScramSHA256, user: "alice", pass: "correct horse", authzID: "bob@example.org", wantCond: InvalidAuthzID},
		{name: "authzid no domain", mech: ScramSHA256, user: "alice", pass: "correct horse", authzID: "alice", wantCond: InvalidAuthzID},
		{name: "authzid full jid", mech: ScramSHA256, user: "alice", pass: "correct horse", authzID: "alice@example.org/res", wantCond: InvalidAuthzID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(accts)
			var ss, cs *tls.ConnectionState
			var sc *x509.Certificate
			if tt.tls != 0 {
				ss, cs = tlsPair(t, tt.tls, cert)
				sc = leaf
			}
			n, err := s.Start(context.Background(), tt.mech, ss, sc)
			if err != nil {
				t.Fatalf("Start(%s): %v", tt.mech, err)
			}
			cc := clientConversation(t, newClient(t, tt.mech, tt.user, tt.pass, tt.authzID), tt.cb, cs)
			user, err := converse(t, n, cc)
			if got, want := condition(t, err), tt.wantCond; got != want {
				t.Fatalf("condition = %q (%v), want %q", got, err, want)
			}
			if got, want := user, tt.wantUser; got != want {
				t.Errorf("username = %q, want %q", got, want)
			}
			if got, want := n.Username(), tt.wantUser; got != want {
				t.Errorf("Negotiation.Username() = %q, want %q", got, want)
			}
			if tt.wantCond == "" {
				if got, want := n.AuthzID(), tt.authzID; got != want {
					t.Errorf("AuthzID() = %q, want %q", got, want)
				}
			}
		})
	}
}

// TestSCRAMDefaultIters runs one exchange with the production iteration
// count and the xdg-go client's default minimum.
func TestSCRAMDefaultIters(t *testing.T) {
	c, err := NewCredentials("pencil", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.SHA256.Iters, DefaultIters; got != want {
		t.Fatalf("iters = %d, want %d", got, want)
	}
	s := &Server{Lookup: accounts{"user": c}.lookup}
	n, err := s.Start(context.Background(), ScramSHA256, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := scram.SHA256.NewClient("user", "pencil", "")
	if err != nil {
		t.Fatal(err)
	}
	user, err := converse(t, n, cl.NewConversation())
	if err != nil || user != "user" {
		t.Fatalf("converse = %q, %v; want user, nil", user, err)
	}
}

// TestUnknownUserLooksLikeWrongPassword checks that an unknown user gets a
// server-first-message with a stable salt and the same failure as a wrong
// password, at the same step.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	s := newTestServer(newAccounts(t, "alice", "secret"))
	first := func(user string) (string, error) {
		n, err := s.Start(context.Background(), ScramSHA256, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, done, err := n.Step(context.Background(), []byte("n,,n="+user+",r=abcdef"))
		if done {
			t.Fatalf("done after client-first for %q: %v", user, err)
		}
		return string(out), err
	}
	salt := func(serverFirst string) string {
		for f := range strings.SplitSeq(serverFirst, ",") {
			if v, ok := strings.CutPrefix(f, "s="); ok {
				return v
			}
		}
		t.Fatalf("no salt in %q", serverFirst)
		return ""
	}
	a, err := first("mallory")
	if err != nil {
		t.Fatalf("unknown user failed at first step: %v", err)
	}
	b, err := first("mallory")
	if err != nil {
		t.Fatal(err)
	}
	c, err := first("trent")
	if err != nil {
		t.Fatal(err)
	}
	if salt(a) != salt(b) {
		t.Errorf("salt for the same unknown user changed: %q vs %q", salt(a), salt(b))
	}
	if salt(a) == salt(c) {
		t.Errorf("two unknown users share salt %q", salt(a))
	}
	if !strings.Contains(a, ",i=64") {
		t.Errorf("server-first %q does not show FakeIters", a)
	}

	// The failures are identical.
	var errs []error
	for _, user := range []string{"alice", "mallory"} {
		n, err := s.Start(context.Background(), ScramSHA256, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = converse(t, n, newClient(t, ScramSHA256, user, "guess", "").NewConversation())
		errs = append(errs, err)
	}
	var f0, f1 *Failure
	if !errors.As(errs[0], &f0) || !errors.As(errs[1], &f1) {
		t.Fatalf("errors %v, %v are not failures", errs[0], errs[1])
	}
	if f0.Condition != NotAuthorized || f0.Condition != f1.Condition || f0.Text != f1.Text {
		t.Errorf("wrong password gives %+v, unknown user %+v", f0, f1)
	}
	var x0, x1 []byte
	if got, want := string(f1.AppendXML(x1)), string(f0.AppendXML(x0)); got != want {
		t.Errorf("failure XML differs: %s vs %s", got, want)
	}
}

// TestChannelBindingMismatch binds the client to another connection.
func TestChannelBindingMismatch(t *testing.T) {
	s := newTestServer(newAccounts(t, "alice", "secret"))
	for _, tc := range []struct {
		version uint16
		cb      string
	}{
		{tls.VersionTLS13, TLSExporter},
		{tls.VersionTLS12, TLSExporter},
		{tls.VersionTLS13, TLSServerEndPoint},
	} {
		t.Run(tc.cb, func(t *testing.T) {
			cert, leaf := ecdsaCert(t)
			ss, _ := tlsPair(t, tc.version, cert)
			// The other connection has another certificate too, as a
			// man in the middle would.
			otherCert, _ := ecdsaCert(t)
			_, otherCS := tlsPair(t, tc.version, otherCert)
			n, err := s.Start(context.Background(), ScramSHA256Plus, ss, leaf)
			if err != nil {
				t.Fatal(err)
			}
			cc := clientConversation(t, newClient(t, ScramSHA256Plus, "alice", "secret", ""), tc.cb, otherCS)
			_, err = converse(t, n, cc)
			if got, want := condition(t, err), NotAuthorized; got != want {
				t.Fatalf("condition = %q (%v), want %q", got, err, want)
			}
		})
	}
}

func TestSCRAMRawMessages(t *testing.T) {
	cert, leaf := ecdsaCert(t)
	ss, _ := tlsPair(t, tls.VersionTLS13, cert)
	tests := []struct {
		name     string
		mech     string
		tls      bool
		first    string
		wantCond string
	}{
		{"tls-unique refused", ScramSHA256Plus, true, "p=tls-unique,,n=alice,r=abc", NotAuthorized},
		{"unknown cb type", ScramSHA256Plus, true, "p=foo-bar,,n=alice,r=abc", NotAuthorized},
		{"bad cb name", ScramSHA256Plus, true, "p=foo bar,,n=alice,r=abc", MalformedRequest},
		{"bad flag", ScramSHA256, false, "x,,n=alice,r=abc", MalformedRequest},
		{"no gs2 header", ScramSHA256, false, "n=alice,r=abc", MalformedRequest},
		{"extension", ScramSHA256, false, "n,,m=ext,n=alice,r=abc", MalformedRequest},
		{"bad name encoding", ScramSHA256, false, "n,,n=al=ice,r=abc", MalformedRequest},
		{"bad authzid encoding", ScramSHA256, false, "n,a=x=y,n=alice,r=abc", MalformedRequest},
		{"control char", ScramSHA256, false, "n,,n=al\x00ice,r=abc", MalformedRequest},
		{"invalid utf8", ScramSHA256, false, "n,,n=al\xffice,r=abc", MalformedRequest},
		{"too long", ScramSHA256, false, "n,,n=alice,r=" + strings.Repeat("a", maxMessage), MalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(newAccounts(t, "alice", "secret"))
			var cs *tls.ConnectionState
			var sc *x509.Certificate
			if tt.tls {
				cs, sc = ss, leaf
			}
			n, err := s.Start(context.Background(), tt.mech, cs, sc)
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := n.Step(context.Background(), []byte(tt.first))
			if got, want := condition(t, err), tt.wantCond; got != want {
				t.Fatalf("condition = %q (%v), want %q", got, err, want)
			}
			if !done || out != nil {
				t.Errorf("failure returned done=%v out=%q", done, out)
			}
			// The negotiation is over.
			if _, _, err := n.Step(context.Background(), []byte("n,,n=alice,r=abc")); condition(t, err) != MalformedRequest {
				t.Errorf("Step after failure = %v, want malformed-request", err)
			}
		})
	}
}

func TestSCRAMBadFinal(t *testing.T) {
	for _, tt := range []struct {
		name, final, wantCond string
	}{
		{"garbage", "hello", MalformedRequest},
		{"bad base64", "c=!!,r=abc,p=xyz", MalformedRequest},
		{"wrong nonce", "c=biws,r=abc,p=AAAA", NotAuthorized},
		{"empty", "", MalformedRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(newAccounts(t, "alice", "secret"))
			n, err := s.Start(context.Background(), ScramSHA256, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, done, err := n.Step(context.Background(), []byte("n,,n=alice,r=abc")); err != nil || done {
				t.Fatalf("first step: done=%v err=%v", done, err)
			}
			_, done, err := n.Step(context.Background(), []byte(tt.final))
			if got, want := condition(t, err), tt.wantCond; got != want || !done {
				t.Fatalf("condition = %q (%v) done=%v, want %q", got, err, done, want)
			}
		})
	}
}

// TestNoInitialResponse checks the empty challenge of RFC 6120 §6.4.2.
func TestNoInitialResponse(t *testing.T) {
	s := newTestServer(newAccounts(t, "alice", "secret"))
	n, err := s.Start(context.Background(), ScramSHA1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, done, err := n.Step(context.Background(), nil)
	if err != nil || done || len(out) != 0 {
		t.Fatalf("Step(empty) = %q, %v, %v; want empty challenge", out, done, err)
	}
	user, err := converse(t, n, newClient(t, ScramSHA1, "alice", "secret", "").NewConversation())
	if err != nil || user != "alice" {
		t.Fatalf("converse = %q, %v", user, err)
	}

	n, _ = s.Start(context.Background(), ScramSHA1, nil, nil)
	_, _, _ = n.Step(context.Background(), nil)
	if _, done, err := n.Step(context.Background(), nil); condition(t, err) != MalformedRequest || !done {
		t.Fatalf("second empty message: done=%v err=%v", done, err)
	}
}

func TestPrepareUsername(t *testing.T) {
	s := newTestServer(newAccounts(t, "alice", "secret"))
	s.PrepareUsername = func(u string) (string, error) {
		if strings.ContainsAny(u, " ") {
			return "", errors.New("space")
		}
		return strings.ToLower(u), nil
	}
	for _, tt := range []struct {
		user, authzID, wantUser, wantCond string
	}{
		{"Alice", "", "alice", ""},
		{"ALICE", "aLiCe@example.org", "alice", ""},
		{"al ice", "", "", NotAuthorized},
		{"alice", "al ice@example.org", "", InvalidAuthzID},
	} {
		n, err := s.Start(context.Background(), ScramSHA256, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		user, err := converse(t, n, newClient(t, ScramSHA256, tt.user, "secret", tt.authzID).NewConversation())
		if got, want := condition(t, err), tt.wantCond; got != want || user != tt.wantUser {
			t.Errorf("%q: got %q, %q (%v); want %q, %q", tt.user, user, got, err, tt.wantUser, want)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	good := newAccounts(t, "alice", "secret")
	boom := errors.New("disk on fire")
	disabled := &Failure{Condition: AccountDisabled, Text: "ask the admin"}
	tests := []struct {
		name     string
		lookup   func(context.Context, string) (Credentials, error)
		pass     string
		wantCond string
		wantErr  error
	}{
		{"storage error", func(context.Context, string) (Credentials, error) { return Credentials{}, boom }, "secret", TemporaryAuthFailure, boom},
		{"nil lookup", nil, "secret", TemporaryAuthFailure, nil},
		{"disabled right password", func(ctx context.Context, u string) (Credentials, error) {
			c, _ := good.lookup(ctx, u)
			return c, disabled
		}, "secret", AccountDisabled, disabled},
		{"disabled wrong password", func(ctx context.Context, u string) (Credentials, error) {
			c, _ := good.lookup(ctx, u)
			return c, disabled
		}, "guess", NotAuthorized, nil},
		{"disabled without credentials", func(context.Context, string) (Credentials, error) {
			return Credentials{}, disabled
		}, "secret", NotAuthorized, nil},
		{"no sha256 keys", func(ctx context.Context, u string) (Credentials, error) {
			c, _ := good.lookup(ctx, u)
			c.SHA256 = ScramKeys{}
			return c, nil
		}, "secret", NotAuthorized, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{Lookup: tt.lookup, FakeIters: testIters}
			n, err := s.Start(context.Background(), ScramSHA256, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = converse(t, n, newClient(t, ScramSHA256, "alice", tt.pass, "").NewConversation())
			if got, want := condition(t, err), tt.wantCond; got != want {
				t.Fatalf("condition = %q (%v), want %q", got, err, want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			if n.Username() != "" {
				t.Errorf("Username() = %q after failure", n.Username())
			}
		})
	}
}

func TestContextReachesLookup(t *testing.T) {
	type key struct{}
	var got any
	s := &Server{Lookup: func(ctx context.Context, u string) (Credentials, error) {
		got = ctx.Value(key{})
		return Credentials{}, ErrUnknownUser
	}}
	n, err := s.Start(context.Background(), ScramSHA1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), key{}, "v")
	if _, _, err := n.Step(ctx, []byte("n,,n=alice,r=abc")); err != nil {
		t.Fatal(err)
	}
	if got != "v" {
		t.Errorf("lookup saw ctx value %v", got)
	}
}

func TestMechanisms(t *testing.T) {
	cert, leaf := ecdsaCert(t)
	ss13, _ := tlsPair(t, tls.VersionTLS13, cert)
	ss12, _ := tlsPair(t, tls.VersionTLS12, cert)
	edCert, edLeaf := ed25519Cert(t)
	ssEd, _ := tlsPair(t, tls.VersionTLS13, edCert)
	all := []string{ScramSHA256Plus, ScramSHA1Plus, ScramSHA256, ScramSHA1, Plain}
	tests := []struct {
		name       string
		allowPlain bool
		cs         *tls.ConnectionState
		cert       *x509.Certificate
		want       []string
		wantCB     []string
	}{
		{"no tls", true, nil, nil, []string{ScramSHA256, ScramSHA1}, nil},
		{"no tls with cert", true, nil, leaf, []string{ScramSHA256, ScramSHA1}, nil},
		{"handshake not complete", true, &tls.ConnectionState{}, leaf, []string{ScramSHA256, ScramSHA1}, nil},
		{"tls13", true, ss13, leaf, all, []string{TLSExporter, TLSServerEndPoint}},
		{"tls13 no plain", false, ss13, leaf, all[:4], []string{TLSExporter, TLSServerEndPoint}},
		{"tls12", true, ss12, leaf, all, []string{TLSExporter, TLSServerEndPoint}},
		{"tls13 cert unknown", true, ss13, nil, all, []string{TLSExporter}},
		{"tls13 ed25519", true, ssEd, edLeaf, all, []string{TLSExporter}},
		{"fake state", true, &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}, nil,
			[]string{ScramSHA256, ScramSHA1, Plain}, nil},
		{"fake state with cert", true, &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}, leaf,
			all, []string{TLSServerEndPoint}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{AllowPlain: tt.allowPlain}
			if got := s.Mechanisms(tt.cs, tt.cert); !slices.Equal(got, tt.want) {
				t.Errorf("Mechanisms = %q, want %q", got, tt.want)
			}
			if got := ChannelBindingTypes(tt.cs, tt.cert); !slices.Equal(got, tt.wantCB) {
				t.Errorf("ChannelBindingTypes = %q, want %q", got, tt.wantCB)
			}
			for _, m := range all {
				_, err := s.Start(context.Background(), m, tt.cs, tt.cert)
				offered := slices.Contains(tt.want, m)
				if offered && err != nil {
					t.Errorf("Start(%s) = %v, want ok", m, err)
				}
				if !offered && condition(t, err) != InvalidMechanism {
					t.Errorf("Start(%s) = %v, want invalid-mechanism", m, err)
				}
			}
		})
	}
	s := &Server{AllowPlain: true}
	for _, m := range []string{"", "DIGEST-MD5", "scram-sha-1", "SCRAM-SHA-512", "EXTERNAL"} {
		if _, err := s.Start(context.Background(), m, ss13, leaf); condition(t, err) != InvalidMechanism {
			t.Errorf("Start(%q) = %v, want invalid-mechanism", m, err)
		}
	}
}

// TestSecretStableSalt checks that two Servers with the same Secret show
// the same fake salt, as a restarted server would.
func TestSecretStableSalt(t *testing.T) {
	serverFirst := func(s *Server) string {
		n, err := s.Start(context.Background(), ScramSHA1, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := n.Step(context.Background(), []byte("n,,n=mallory,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(out), ",s=")
		return rest
	}
	a := accounts{}
	s1 := &Server{Lookup: a.lookup, Secret: []byte("k")}
	s2 := &Server{Lookup: a.lookup, Secret: []byte("k")}
	s3 := &Server{Lookup: a.lookup, Secret: []byte("other")}
	if got, want := serverFirst(s2), serverFirst(s1); got != want {
		t.Errorf("same secret: %q vs %q", got, want)
	}
	if serverFirst(s3) == serverFirst(s1) {
		t.Errorf("different secrets give the same salt")
	}
	if got, want := serverFirst(s1), ",i=4096"; !strings.HasSuffix(got, want) {
		t.Errorf("server-first ends %q, want default iterations %q", got, want)
	}
}
