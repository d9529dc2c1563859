package sasl

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

// fuzzServer is a server with cheap credentials for fuzzing.
func fuzzServer(f *testing.F) *Server {
	f.Helper()
	c, err := NewCredentials("pw", 1)
	if err != nil {
		f.Fatal(err)
	}
	a := accounts{"alice": c}
	return &Server{
		Lookup:     a.lookup,
		AllowPlain: true,
		FakeIters:  1,
		PrepareUsername: func(s string) (string, error) {
			if strings.ContainsAny(s, "@/\"&'<>:") {
				return "", errors.New("bad localpart")
			}
			return strings.ToLower(s), nil
		},
	}
}

// checkStep checks the invariants of one Step result; before tells whether
// the negotiation had already succeeded.
func checkStep(t *testing.T, n *Negotiation, before bool, out []byte, done bool, err error) {
	t.Helper()
	if err != nil {
		var f *Failure
		if !errors.As(err, &f) {
			t.Fatalf("error %T %v is not a *Failure", err, err)
		}
		if !validCondition(f.Condition) {
			t.Fatalf("invalid condition %q", f.Condition)
		}
		if !done || out != nil {
			t.Fatalf("failure with done=%v out=%q", done, out)
		}
		if !before && n.Username() != "" {
			t.Fatalf("Username() = %q after failure", n.Username())
		}
		return
	}
	if done && n.Username() == "" {
		t.Fatalf("success without username")
	}
	if !done && n.Username() != "" {
		t.Fatalf("username %q before success", n.Username())
	}
}

// FuzzStep feeds two arbitrary messages to a fresh negotiation of every
// mechanism. In the second message "$R" is replaced by the server nonce, so
// the fuzzer can reach the proof check.
func FuzzStep(f *testing.F) {
	s := fuzzServer(f)
	cert, leaf := ecdsaCert(f)
	ss, _ := tlsPair(f, tls.VersionTLS13, cert)
	mechs := s.Mechanisms(ss, leaf)
	seeds := []struct{ first, second string }{
		{"n,,n=alice,r=abc", "c=biws,r=$R,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"y,,n=alice,r=abc", "c=eSws,r=$R,p=AAAA"},
		{"p=tls-exporter,,n=alice,r=abc", "c=cD10bHMtZXhwb3J0ZXIsLA==,r=$R,p=AAAA"},
		{"p=tls-server-end-point,a=alice@example.org,n=alice,r=abc", "c=,r=$R,x=y,p="},
		{"n,a=bob@x,n=mallory,r=abc", "c=biws,r=$R,p=AAAA"},
		{"n,,n=a=2Cb=3D,r=abc", "c=biws,r=wrong,p=AAAA"},
		{"n,,m=x,n=alice,r=abc", ""},
		{"\x00alice\x00pw", ""},
		{"", "\x00alice\x00pw"},
		{"", "n,,n=alice,r=abc"},
		{"p=,,n=,r=", ",,,"},
	}
	for i, sd := range seeds {
		f.Add(uint8(i), []byte(sd.first), []byte(sd.second))
	}
	f.Fuzz(func(t *testing.T, mech uint8, first, second []byte) {
		ctx := context.Background()
		n, err := s.Start(ctx, mechs[int(mech)%len(mechs)], ss, leaf)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		out, done, err := n.Step(ctx, first)
		checkStep(t, n, false, out, done, err)
		succeeded := done && err == nil
		if bytes.Contains(second, []byte("$R")) {
			for field := range bytes.SplitSeq(out, []byte(",")) {
				if r, ok := bytes.CutPrefix(field, []byte("r=")); ok {
					second = bytes.ReplaceAll(second, []byte("$R"), r)
					break
				}
			}
		}
		wasDone := done
		out, done, err = n.Step(ctx, second)
		checkStep(t, n, succeeded, out, done, err)
		if wasDone && err == nil {
			t.Fatalf("Step after the end succeeded")
		}
	})
}

// FuzzPlain checks the PLAIN parser round-trips and that a PLAIN
// negotiation never panics and only accepts alice's password.
func FuzzPlain(f *testing.F) {
	s := fuzzServer(f)
	cert, leaf := ecdsaCert(f)
	ss, _ := tlsPair(f, tls.VersionTLS12, cert)
	for _, seed := range []string{
		"\x00alice\x00pw",
		"alice@example.org\x00Alice\x00pw",
		"\x00alice\x00p\u00ADw",
		"bob@example.org\x00alice\x00pw",
		"\x00\x00",
		"\x00mallory\x00pw",
		"a\x00b\x00c\x00d",
		"\xff\x00alice\x00pw",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		z, c, p, ok := parsePlain(in)
		if ok {
			if got := z + "\x00" + c + "\x00" + p; got != string(in) {
				t.Fatalf("parsePlain(%q) does not round-trip: %q", in, got)
			}
		}
		n, err := s.Start(context.Background(), Plain, ss, leaf)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		out, done, err := n.Step(context.Background(), in)
		if len(in) == 0 {
			if err != nil || done {
				t.Fatalf("empty message: done=%v err=%v", done, err)
			}
			return
		}
		checkStep(t, n, false, out, done, err)
		if !done {
			t.Fatalf("PLAIN not done after one message")
		}
		if err == nil {
			if !ok || n.Username() != "alice" {
				t.Fatalf("accepted %q as %q", in, n.Username())
			}
		} else if !ok && condition(t, err) != MalformedRequest {
			t.Fatalf("unparsable %q gave %v", in, err)
		}
	})
}
