package cluster

import (
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"plain", "alice@example.org"},
		{"dots and wildcards", "a.b*c>d@e.f"},
		{"whitespace", "a b\tc\r\nd@example.org"},
		{"unicode", "ünïcödé@exämple.org"},
		{"long", strings.Repeat("x", 3071)},
	}
	seen := make(map[string]string)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := Token(tt.in)
			if got, want := len(tok), TokenLen; got != want {
				t.Errorf("len(Token(%.20q)) = %d, want %d", tt.in, got, want)
			}
			if !validToken(tok) {
				t.Errorf("Token(%.20q) = %q: not a safe subject token", tt.in, tok)
			}
			if got, want := Token(tt.in), tok; got != want {
				t.Errorf("Token not deterministic: %q then %q", want, got)
			}
			if prev, ok := seen[tok]; ok {
				t.Errorf("Token(%.20q) = Token(%.20q)", tt.in, prev)
			}
			seen[tok] = tt.in
		})
	}
}

func TestSubjects(t *testing.T) {
	tok := Token("bob@example.org")
	if got, want := UserSubject("bob@example.org"), "user."+tok; got != want {
		t.Errorf("UserSubject = %q, want %q", got, want)
	}
	if got, want := LogSubject("bob@example.org"), "log."+tok; got != want {
		t.Errorf("LogSubject = %q, want %q", got, want)
	}
}

// validToken reports whether s is usable as one NATS subject token and KV key
// token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			return false
		}
	}
	return true
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "alice@example.org", "a.b", "*", ">", " \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := Token(s)
		if len(tok) != TokenLen || !validToken(tok) {
			t.Fatalf("Token(%q) = %q", s, tok)
		}
	})
}
