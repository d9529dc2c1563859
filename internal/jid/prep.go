package jid

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/bidi"
	"golang.org/x/text/unicode/norm"
)

const (
	// maxPart is the longest a prepared part may be, in octets (RFC 7622 §3).
	maxPart = 1023
	// maxRaw bounds a part before preparation, so that junk input cannot make
	// PRECIS or IDNA work on megabytes. Mappings shrink text by at most a
	// factor of three (a fullwidth letter to ASCII), so nothing valid is lost.
	maxRaw = 4 * maxPart
	// maxLabel is the longest a DNS label may be, in octets.
	maxLabel = 63
	// forbiddenLocal are the characters RFC 7622 §3.3.1 forbids in a
	// localpart on top of the UsernameCaseMapped profile.
	forbiddenLocal = `"&'/:<>@`
)

// malformedError is the error type of this package; it matches ErrMalformed.
type malformedError struct {
	part   string // "localpart", "domainpart" or "resourcepart"
	reason string
	err    error // from precis or idna, may be nil
}

func malformed(part, reason string, err error) error {
	return &malformedError{part: part, reason: reason, err: err}
}

func (e *malformedError) Error() string {
	msg := "jid: malformed " + e.part + ": " + e.reason
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *malformedError) Is(target error) bool { return target == ErrMalformed }

func (e *malformedError) Unwrap() error { return e.err }

// PrepareLocal enforces s as a localpart: the PRECIS UsernameCaseMapped
// profile plus the characters RFC 7622 forbids. It is also what SASL
// usernames and account names go through.
func PrepareLocal(s string) (string, error) { return prepareLocal(s, true) }

// PrepareDomain prepares s as a domainpart: IDNA mapping and validation
// (U-labels out), an IPv4 address or a bracketed IPv6 literal; one trailing
// dot is removed.
func PrepareDomain(s string) (string, error) { return prepareDomain(s, true) }

// PrepareResource enforces s as a resourcepart (PRECIS OpaqueString).
func PrepareResource(s string) (string, error) { return prepareResource(s, true) }

// localFast reports whether s is a valid localpart that UsernameCaseMapped
// leaves unchanged, judging from ASCII alone: printable, not a space, no
// uppercase, none of the forbidden characters.
func localFast(s string) bool {
	if len(s) == 0 || len(s) > maxPart {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || 'A' <= c && c <= 'Z' { // controls, space, DEL, non-ASCII
			return false
		}
		switch c {
		case '"', '&', '\'', '/', ':', '<', '>', '@':
			return false
		}
	}
	return true
}

// domainFast reports whether s is a lowercase LDH domain name that IDNA
// leaves unchanged: labels of 1–63 letters, digits and hyphens, not starting
// or ending with a hyphen, without "--" in the third and fourth places (so
// A-labels take the full path), and no trailing dot.
func domainFast(s string) bool {
	if len(s) == 0 || len(s) > maxPart {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
			continue
		}
		n := i - start
		if n == 0 || n > maxLabel || s[start] == '-' || s[i-1] == '-' ||
			n >= 4 && s[start+2] == '-' && s[start+3] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}

// resourceFast reports whether s is printable ASCII (space included), which
// OpaqueString leaves unchanged.
func resourceFast(s string) bool {
	if len(s) == 0 || len(s) > maxPart {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' { // controls, DEL, non-ASCII
			return false
		}
	}
	return true
}

// enforce applies a PRECIS profile and checks that the result is stable:
// enforcing it again must not change it, or JIDs would not round-trip.
func enforce(profile func(string) (string, error), part, s string) (string, error) {
	if len(s) > maxRaw {
		return "", malformed(part, "too long", nil)
	}
	if !utf8.ValidString(s) {
		return "", malformed(part, "invalid UTF-8", nil)
	}
	out, err := profile(s)
	if err != nil {
		return "", malformed(part, "invalid", err)
	}
	if out == s {
		return s, nil // keep the caller's string, let the copy go
	}
	again, err := profile(out)
	if err != nil || again != out {
		return "", malformed(part, "preparation is not idempotent", err)
	}
	return out, nil
}

// usernameCaseMapped enforces the UsernameCaseMapped profile of RFC 8265.
//
// precis.UsernameCaseMapped applies the Bidi Rule to every non-ASCII string
// (golang/go#17383), so it refuses left-to-right names such as "1josé" or
// "josé." that RFC 8265 §3.3.1 accepts: the rule is for strings that contain
// right-to-left characters. When it fails on the Bidi Rule, the same profile
// without that rule is applied and the rule is then applied only if the
// result contains R, AL or AN characters.
func usernameCaseMapped(s string) (string, error) {
	out, err := precis.UsernameCaseMapped.String(s)
	if !errors.Is(err, bidirule.ErrInvalid) {
		return out, err
	}
	p := precis.NewIdentifier(precis.FoldWidth, precis.LowerCase(), precis.Norm(norm.NFC))
	if out, err = p.String(s); err != nil {
		return "", err
	}
	if bidirule.DirectionString(out) == bidi.RightToLeft {
		return "", bidirule.ErrInvalid // the rule applies and failed above
	}
	return out, nil
}

func prepareLocal(s string, fast bool) (string, error) {
	if fast {
		if localFast(s) {
			return s, nil
		}
		// ASCII with uppercase letters: PRECIS would only lowercase it.
		if l, ok := lowerASCII(s); ok && localFast(l) {
			return l, nil
		}
	}
	if s == "" {
		return "", malformed("localpart", "empty", nil)
	}
	out, err := enforce(usernameCaseMapped, "localpart", s)
	if err != nil {
		return "", err
	}
	switch {
	case out == "":
		return "", malformed("localpart", "empty", nil)
	case len(out) > maxPart:
		return "", malformed("localpart", "too long", nil)
	}
	if i := strings.IndexAny(out, forbiddenLocal); i >= 0 {
		return "", malformed("localpart", "forbidden character "+strconv.QuoteRune(rune(out[i])), nil)
	}
	return out, nil
}

func prepareResource(s string, fast bool) (string, error) {
	if fast && resourceFast(s) {
		return s, nil
	}
	if s == "" {
		return "", malformed("resourcepart", "empty", nil)
	}
	out, err := enforce(precis.OpaqueString.String, "resourcepart", s)
	if err != nil {
		return "", err
	}
	switch {
	case out == "":
		return "", malformed("resourcepart", "empty", nil)
	case len(out) > maxPart:
		return "", malformed("resourcepart", "too long", nil)
	}
	return out, nil
}

func prepareDomain(s string, fast bool) (string, error) {
	if fast && domainFast(s) {
		return s, nil
	}
	if len(s) > maxRaw {
		return "", malformed("domainpart", "too long", nil)
	}
	if !utf8.ValidString(s) {
		return "", malformed("domainpart", "invalid UTF-8", nil)
	}
	d := trimDot(s)
	if d == "" {
		return "", malformed("domainpart", "empty", nil)
	}
	if d[0] == '[' {
		return prepareIPv6(d)
	}
	if fast {
		if domainFast(d) {
			return d, nil
		}
		// ASCII with uppercase letters: IDNA would only lowercase it.
		if l, ok := lowerASCII(d); ok && domainFast(l) {
			return l, nil
		}
	}
	out, err := idna.Lookup.ToUnicode(d)
	if err != nil {
		return "", malformed("domainpart", "invalid", err)
	}
	if out != d {
		again, err := idna.Lookup.ToUnicode(out)
		if err != nil || again != out {
			return "", malformed("domainpart", "preparation is not idempotent", err)
		}
	} else {
		out = d // keep the caller's string, let the copy go
	}
	if len(out) > maxPart {
		return "", malformed("domainpart", "too long", nil)
	}
	if strings.ContainsAny(out, "@/") {
		// STD3 rules already refuse these; keep the split unambiguous anyway.
		return "", malformed("domainpart", "contains '@' or '/'", nil)
	}
	ascii := out
	if !isASCII(out) {
		if ascii, err = idna.Lookup.ToASCII(out); err != nil {
			return "", malformed("domainpart", "invalid", err)
		}
	}
	for label := range strings.SplitSeq(ascii, ".") {
		if label == "" {
			return "", malformed("domainpart", "empty label", nil)
		}
		if len(label) > maxLabel {
			return "", malformed("domainpart", "label longer than 63 octets", nil)
		}
	}
	return out, nil
}

// prepareIPv6 handles an IP-literal domainpart, "[" IPv6address "]", and
// returns it in the RFC 5952 text form so equal addresses compare equal.
func prepareIPv6(d string) (string, error) {
	if len(d) < 2 || d[len(d)-1] != ']' {
		return "", malformed("domainpart", "unterminated IP literal", nil)
	}
	a, err := netip.ParseAddr(d[1 : len(d)-1])
	if err != nil || !a.Is6() || a.Zone() != "" {
		return "", malformed("domainpart", "invalid IPv6 literal", err)
	}
	out := "[" + a.String() + "]"
	if out == d {
		return d, nil
	}
	return out, nil
}

// trimDot removes one trailing label separator: the full stop or one of the
// characters IDNA maps to it (U+3002, U+FF0E, U+FF61).
func trimDot(s string) string {
	if strings.HasSuffix(s, ".") {
		return s[:len(s)-1]
	}
	for _, dot := range [...]string{"\u3002", "\uff0e", "\uff61"} {
		if strings.HasSuffix(s, dot) {
			return s[:len(s)-len(dot)]
		}
	}
	return s
}

// lowerASCII returns s with A–Z lowercased if s is ASCII and contains at
// least one uppercase letter; ok is false otherwise (nothing to gain).
func lowerASCII(s string) (l string, ok bool) {
	if len(s) > maxPart || !isASCII(s) {
		return "", false
	}
	l = strings.ToLower(s) // one allocation, or none when there is no uppercase
	return l, l != s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
