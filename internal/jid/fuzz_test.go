package jid

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, that every JID it returns is
// canonical (its String parses back to the same JID, part by part), and that
// the ASCII fast paths agree with PRECIS and IDNA.
func FuzzParse(f *testing.F) {
	for _, tc := range validTests {
		f.Add(tc.in)
	}
	for _, s := range invalidTests {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		slow, serr := parse(s, false)
		if (err == nil) != (serr == nil) || j != slow {
			t.Fatalf("Parse(%q): fast path = %#v, %v; PRECIS path = %#v, %v", s, j, err, slow, serr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) error %v does not match ErrMalformed", s, err)
			}
			if !j.IsZero() {
				t.Fatalf("Parse(%q) = %#v with error %v", s, j, err)
			}
			return
		}
		str := j.String()
		if !utf8.ValidString(str) {
			t.Fatalf("Parse(%q) = %q: invalid UTF-8", s, str)
		}
		again, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, str, err)
		}
		if again != j {
			t.Fatalf("Parse(%q) = %#v, Parse(%q) = %#v", s, j, str, again)
		}
		n, err := New(j.Local(), j.Domain(), j.Resource())
		if err != nil || n != j {
			t.Fatalf("New(%q, %q, %q) = %#v, %v; want %#v", j.Local(), j.Domain(), j.Resource(), n, err, j)
		}
		for _, p := range []string{j.Local(), j.Domain(), j.Resource()} {
			if len(p) > maxPart {
				t.Fatalf("Parse(%q): part of %d octets", s, len(p))
			}
		}
		if j.Domain() == "" {
			t.Fatalf("Parse(%q) = %#v: empty domainpart", s, j)
		}
		if b := j.Bare(); b.IsFull() || b.Domain() != j.Domain() || b.Local() != j.Local() {
			t.Fatalf("Parse(%q).Bare() = %#v", s, b)
		}
		if d := j.Domainpart(); d.String() != j.Domain() || d != MustParse(j.Domain()) {
			t.Fatalf("Parse(%q).Domainpart() = %#v", s, d)
		}
	})
}
