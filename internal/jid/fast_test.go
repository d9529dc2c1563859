package jid

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// sameResult reports whether Parse with and without the fast paths agree on
// s: both fail, or both succeed with the same JID.
func checkSameResult(t *testing.T, s string) {
	t.Helper()
	fast, ferr := parse(s, true)
	slow, serr := parse(s, false)
	if (ferr == nil) != (serr == nil) || fast != slow {
		t.Errorf("Parse(%q): fast path = %#v, %v; PRECIS path = %#v, %v", s, fast, ferr, slow, serr)
	}
}

// TestFastPathTable runs every input of the other tables through both paths.
func TestFastPathTable(t *testing.T) {
	var inputs []string
	for _, tc := range validTests {
		inputs = append(inputs, tc.in, tc.want)
	}
	inputs = append(inputs, invalidTests...)
	inputs = append(inputs,
		"juliet@example.com/balcony",
		"a-b.c-d.e",
		"xn--caf-dma.example",
		"ab--cd.example",
		"a.-b.example",
		"a-.b.example",
		"0.0.0.0",
		"a@b/ ",
		"a@b/~",
		"~@b",
		"`@b",
	)
	for _, s := range inputs {
		checkSameResult(t, s)
	}
}

// TestFastPathBytes checks every single ASCII byte and every pair of ASCII
// bytes in each part: the fast path must accept exactly what the PRECIS and
// IDNA path accepts unchanged (so it is never wrong, and only declines what
// needs mapping).
func TestFastPathBytes(t *testing.T) {
	type part struct {
		name string
		fast func(string) bool
		slow func(string) (string, error)
	}
	parts := []part{
		{"local", localFast, func(s string) (string, error) { return prepareLocal(s, false) }},
		{"domain", domainFast, func(s string) (string, error) { return prepareDomain(s, false) }},
		{"resource", resourceFast, func(s string) (string, error) { return prepareResource(s, false) }},
	}
	for _, p := range parts {
		check := func(s string) {
			out, err := p.slow(s)
			unchanged := err == nil && out == s
			if fast := p.fast(s); fast && !unchanged {
				t.Errorf("%s %q: fast path accepts, PRECIS/IDNA path gives %q, %v", p.name, s, out, err)
			} else if !fast && unchanged && !strings.Contains(s, "--") {
				// Labels with "--" in the third and fourth places are left
				// to IDNA on purpose (A-labels).
				t.Errorf("%s %q: fast path declines input that needs no mapping", p.name, s)
			}
		}
		for a := range 128 {
			check(string(rune(a)))
			for b := range 128 {
				check(string([]byte{byte(a), byte(b)}))
			}
		}
	}
}

// TestFastPathRandom compares both paths on random ASCII-heavy JIDs.
func TestFastPathRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7622, 8265))
	const alphabet = "abcxyz019-._~!$%*+=?^`{|}ABCZ @/:&'\"<>\\\t\x00\x7f"
	unicode := []string{"é", "É", "ß", "Σ", "ａ", "Ａ", "．", "。", "\u3000", "\u0301", "ש", "١", "♚", "Ⅳ"}
	randPart := func(n int) string {
		var b strings.Builder
		for range n {
			if r.IntN(20) == 0 {
				b.WriteString(unicode[r.IntN(len(unicode))])
			} else {
				b.WriteByte(alphabet[r.IntN(len(alphabet))])
			}
		}
		return b.String()
	}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		var s string
		switch r.IntN(4) {
		case 0:
			s = randPart(1 + r.IntN(12))
		case 1:
			s = randPart(1+r.IntN(8)) + "@" + "example.com"
		case 2:
			s = "juliet@example.com/" + randPart(1+r.IntN(8))
		default:
			s = randPart(1+r.IntN(6)) + "@" + randPart(1+r.IntN(6)) + "/" + randPart(1+r.IntN(6))
		}
		checkSameResult(t, s)
	}
}
