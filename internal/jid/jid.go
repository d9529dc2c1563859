package jid

import (
	"errors"
	"strings"
)

// ErrMalformed is matched (errors.Is) by every error this package returns.
var ErrMalformed = errors.New("jid: malformed")

// JID is an immutable, already-prepared XMPP address. The zero value is the
// empty JID. JIDs are comparable with == and usable as map keys.
//
// A JID holds its canonical string form and the offsets of its parts, so
// String, Bare and Domainpart never allocate.
type JID struct {
	s   string // canonical form: [local@]domain[/resource]
	dom uint16 // offset of the domainpart in s (0 when there is no localpart)
	res uint16 // offset of the '/' before the resourcepart, or len(s)
}

// Parse parses and prepares s, enforcing all the rules of RFC 7622.
// Errors match ErrMalformed.
func Parse(s string) (JID, error) {
	return parse(s, true)
}

// MustParse is like Parse but panics on error. It is meant for tests and
// constants.
func MustParse(s string) JID {
	j, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return j
}

// New prepares each part and assembles a JID. local and resource may be
// empty (no localpart, no resourcepart); domain may not.
func New(local, domain, resource string) (JID, error) {
	var err error
	if local != "" {
		if local, err = prepareLocal(local, true); err != nil {
			return JID{}, err
		}
	}
	if domain, err = prepareDomain(domain, true); err != nil {
		return JID{}, err
	}
	if resource != "" {
		if resource, err = prepareResource(resource, true); err != nil {
			return JID{}, err
		}
	}
	return assemble(local, domain, resource), nil
}

// parse splits s as RFC 7622 §3.1 says (resource after the first '/', local
// before the first '@' that precedes it) and prepares each part. fast=false
// disables the ASCII fast paths; tests use it to check that both paths agree.
func parse(s string, fast bool) (JID, error) {
	rest, resource, hasRes := strings.Cut(s, "/")
	local, domain, hasLocal := strings.Cut(rest, "@")
	if !hasLocal {
		local, domain = "", rest
	}
	if hasLocal && local == "" {
		return JID{}, malformed("localpart", "empty", nil)
	}
	if hasRes && resource == "" {
		return JID{}, malformed("resourcepart", "empty", nil)
	}
	// Domain first: it is the part most likely to be wrong in junk input and
	// the only one that is always present.
	d, err := prepareDomain(domain, fast)
	if err != nil {
		return JID{}, err
	}
	l := local
	if hasLocal {
		if l, err = prepareLocal(local, fast); err != nil {
			return JID{}, err
		}
	}
	r := resource
	if hasRes {
		if r, err = prepareResource(resource, fast); err != nil {
			return JID{}, err
		}
	}
	if l == local && d == domain && r == resource {
		// s is already canonical: keep it and allocate nothing.
		j := JID{s: s, res: uint16(len(s))}
		if hasLocal {
			j.dom = uint16(len(l) + 1)
		}
		if hasRes {
			j.res = uint16(len(rest))
		}
		return j, nil
	}
	return assemble(l, d, r), nil
}

// assemble builds a JID from prepared parts (empty local or resource means
// absent).
func assemble(local, domain, resource string) JID {
	var j JID
	switch {
	case local == "" && resource == "":
		j.s = domain
	case local == "":
		j.s = domain + "/" + resource
	case resource == "":
		j.s = local + "@" + domain
	default:
		j.s = local + "@" + domain + "/" + resource
	}
	if local != "" {
		j.dom = uint16(len(local) + 1)
	}
	j.res = j.dom + uint16(len(domain))
	return j
}

// Local returns the localpart, or "" if there is none.
func (j JID) Local() string {
	if j.dom == 0 {
		return ""
	}
	return j.s[:j.dom-1]
}

// Domain returns the domainpart ("" only for the zero JID).
func (j JID) Domain() string { return j.s[j.dom:j.res] }

// Resource returns the resourcepart, or "" if there is none.
func (j JID) Resource() string {
	if int(j.res) >= len(j.s) {
		return ""
	}
	return j.s[j.res+1:]
}

// Bare returns j without its resourcepart.
func (j JID) Bare() JID { return JID{s: j.s[:j.res], dom: j.dom, res: j.res} }

// Domainpart returns a JID holding only the domainpart of j.
func (j JID) Domainpart() JID {
	return JID{s: j.s[j.dom:j.res], res: j.res - j.dom}
}

// WithResource returns the bare form of j with resourcepart r, prepared.
// An empty r is an error (use Bare to drop the resource), as is calling it
// on the zero JID.
func (j JID) WithResource(r string) (JID, error) {
	if j.IsZero() {
		return JID{}, malformed("domainpart", "empty", nil)
	}
	r, err := prepareResource(r, true)
	if err != nil {
		return JID{}, err
	}
	bare := j.s[:j.res]
	return JID{s: bare + "/" + r, dom: j.dom, res: j.res}, nil
}

// IsZero reports whether j is the zero (empty) JID.
func (j JID) IsZero() bool { return j.s == "" }

// IsBare reports whether j is a non-zero JID without a resourcepart.
func (j JID) IsBare() bool { return j.s != "" && int(j.res) == len(j.s) }

// IsFull reports whether j has a resourcepart.
func (j JID) IsFull() bool { return int(j.res) < len(j.s) }

// String returns the canonical form of j; "" for the zero JID. It does not
// allocate.
func (j JID) String() string { return j.s }

// AppendText appends the canonical form of j to b (encoding.TextAppender).
func (j JID) AppendText(b []byte) ([]byte, error) { return append(b, j.s...), nil }

// MarshalText returns the canonical form of j (encoding.TextMarshaler).
func (j JID) MarshalText() ([]byte, error) { return []byte(j.s), nil }

// UnmarshalText parses text into j (encoding.TextUnmarshaler). Empty text
// gives the zero JID.
func (j *JID) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*j = JID{}
		return nil
	}
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*j = p
	return nil
}
