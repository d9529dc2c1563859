package jid

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// validTests maps input to the canonical form Parse must produce.
var validTests = []struct {
	in, want string
	local    string
	domain   string
	resource string
}{
	{"example.com", "example.com", "", "example.com", ""},
	{"localhost", "localhost", "", "localhost", ""},
	{"juliet@example.com", "juliet@example.com", "juliet", "example.com", ""},
	{"juliet@example.com/foo", "juliet@example.com/foo", "juliet", "example.com", "foo"},
	{"juliet@example.com/foo bar", "juliet@example.com/foo bar", "juliet", "example.com", "foo bar"},
	{"juliet@example.com/ foo", "juliet@example.com/ foo", "juliet", "example.com", " foo"},
	{"juliet@example.com/foo@bar", "juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"},
	{"juliet@example.com/foo/bar", "juliet@example.com/foo/bar", "juliet", "example.com", "foo/bar"},
	{"example.com/foo", "example.com/foo", "", "example.com", "foo"},
	{"example.com/a@b", "example.com/a@b", "", "example.com", "a@b"},
	{`foo\20bar@example.com`, `foo\20bar@example.com`, `foo\20bar`, "example.com", ""},
	{"a.b-c_d+e!#$%*=?^`{|}~@example.com", "a.b-c_d+e!#$%*=?^`{|}~@example.com", "a.b-c_d+e!#$%*=?^`{|}~", "example.com", ""},
	{"x@a-b.c0.example", "x@a-b.c0.example", "x", "a-b.c0.example", ""},

	// Case mapping: local and domain are lowercased, resource is kept.
	{"Juliet@Example.COM/Balcony", "juliet@example.com/Balcony", "juliet", "example.com", "Balcony"},
	{"EXAMPLE.COM", "example.com", "", "example.com", ""},
	{"Σ@example.com", "σ@example.com", "σ", "example.com", ""},
	{"JÙLIET@example.com", "jùliet@example.com", "jùliet", "example.com", ""},
	{"fußball@example.com", "fußball@example.com", "fußball", "example.com", ""},
	{"πλάτων@example.com/ἀπολογία", "πλάτων@example.com/ἀπολογία", "πλάτων", "example.com", "ἀπολογία"},
	{"ΠΛΆΤΩΝ@example.com", "πλάτων@example.com", "πλάτων", "example.com", ""},

	// The Bidi Rule only applies to strings with right-to-left characters.
	{"1josé@example.com", "1josé@example.com", "1josé", "example.com", ""},
	{"JOSÉ.@example.com", "josé.@example.com", "josé.", "example.com", ""},
	{"_é-@example.com", "_é-@example.com", "_é-", "example.com", ""},
	{"שלום@example.com", "שלום@example.com", "שלום", "example.com", ""},
	{"شمس@example.com", "شمس@example.com", "شمس", "example.com", ""},

	// PRECIS, unlike IDNA, has no rule against a leading combining mark.
	{"\u0301a@example.com", "\u0301a@example.com", "\u0301a", "example.com", ""},

	// Width mapping.
	{"ＪＵＬＩＥＴ@example.com", "juliet@example.com", "juliet", "example.com", ""},
	{"juliet@ｅｘａｍｐｌｅ．ｃｏｍ", "juliet@example.com", "juliet", "example.com", ""},
	{"juliet@example.com/ＦＵＬＬ", "juliet@example.com/ＦＵＬＬ", "juliet", "example.com", "ＦＵＬＬ"},

	// Normalization (NFC): e + combining acute becomes é.
	{"jule\u0301@example.com", "julé@example.com", "julé", "example.com", ""},
	{"a@example.com/e\u0301", "a@example.com/é", "a", "example.com", "é"},

	// Resource: non-ASCII spaces become U+0020, symbols are fine.
	{"a@example.com/x\u3000y", "a@example.com/x y", "a", "example.com", "x y"},
	{"a@example.com/x\u00a0y", "a@example.com/x y", "a", "example.com", "x y"},
	{"king@example.com/♚", "king@example.com/♚", "king", "example.com", "♚"},

	// Trailing dot.
	{"example.com.", "example.com", "", "example.com", ""},
	{"juliet@example.com./r", "juliet@example.com/r", "juliet", "example.com", "r"},
	{"juliet@example.com\u3002", "juliet@example.com", "juliet", "example.com", ""},
	{"juliet@EXAMPLE.com.", "juliet@example.com", "juliet", "example.com", ""},

	// IDNA: A-labels become U-labels, uppercase is mapped.
	{"juliet@xn--caf-dma.example", "juliet@café.example", "juliet", "café.example", ""},
	{"juliet@CAFÉ.example", "juliet@café.example", "juliet", "café.example", ""},
	{"juliet@XN--CAF-DMA.example", "juliet@café.example", "juliet", "café.example", ""},
	{"juliet@café.example", "juliet@café.example", "juliet", "café.example", ""},
	{"juliet@例え.テスト", "juliet@例え.テスト", "juliet", "例え.テスト", ""},
	{"juliet@例え。テスト", "juliet@例え.テスト", "juliet", "例え.テスト", ""},

	// IP literals.
	{"192.168.0.1", "192.168.0.1", "", "192.168.0.1", ""},
	{"juliet@192.168.0.1/r", "juliet@192.168.0.1/r", "juliet", "192.168.0.1", "r"},
	{"[::1]", "[::1]", "", "[::1]", ""},
	{"juliet@[::1]/r", "juliet@[::1]/r", "juliet", "[::1]", "r"},
	{"juliet@[0:0:0::1]", "juliet@[::1]", "juliet", "[::1]", ""},
	{"[2001:DB8::1]", "[2001:db8::1]", "", "[2001:db8::1]", ""},
	{"[::FFFF:1.2.3.4]", "[::ffff:1.2.3.4]", "", "[::ffff:1.2.3.4]", ""},
	{"[::1].", "[::1]", "", "[::1]", ""},

	// Length limits, at the limit.
	{strings.Repeat("a", 1023) + "@example.com", strings.Repeat("a", 1023) + "@example.com", strings.Repeat("a", 1023), "example.com", ""},
	{"example.com/" + strings.Repeat("r", 1023), "example.com/" + strings.Repeat("r", 1023), "", "example.com", strings.Repeat("r", 1023)},
	{strings.Repeat("b", 63) + ".example", strings.Repeat("b", 63) + ".example", "", strings.Repeat("b", 63) + ".example", ""},
	{longDomain(1023), longDomain(1023), "", longDomain(1023), ""},
	// Fullwidth input longer than 1023 bytes that shrinks under the limit.
	{strings.Repeat("ａ", 1000) + "@example.com", strings.Repeat("a", 1000) + "@example.com", strings.Repeat("a", 1000), "example.com", ""},
}

var invalidTests = []string{
	"",
	"@",
	"/",
	"@example.com",
	"@example.com/r",
	"juliet@",
	"juliet@/r",
	"example.com/",
	"juliet@example.com/",
	"/foobar",
	"a@b@c",
	".",
	"..",

	// Localpart.
	"foo bar@example.com",
	`"juliet"@example.com`,
	"juliet&romeo@example.com",
	"jul'iet@example.com",
	"a:b@example.com",
	"a<b@example.com",
	"a>b@example.com",
	"a\tb@example.com",
	"henryⅣ@example.com", // compatibility character
	"♚@example.com",      // symbol
	"a＠b@example.com",    // fullwidth @ maps to a forbidden @
	"a／b@example.com",    // fullwidth solidus maps to a forbidden /
	"a\u3000b@example.com",
	"1שלום@example.com", // right-to-left: the Bidi Rule applies and fails
	"שלוםa@example.com",
	"١٢٣@example.com",
	"\xff@example.com",
	"\u2000@example.com", // EN QUAD is a space
	"\uf8cf@example.com", // private use
	"a\x00@example.com",

	// Domainpart.
	"ex ample.com",
	"example..com",
	".example.com",
	"example.com..",
	"-example.com",
	"example-.com",
	"ab--cd.example",
	"exa_mple.com",
	"juliet@exa!mple.com",
	"juliet@a:b",
	"::1",
	"[::1",
	"[::1]x",
	"[1.2.3.4]",
	"[fe80::1%eth0]",
	"[]",
	"[",
	"xn--zz--.example",
	"xn--abc-.example", // an A-label that decodes to ASCII
	"example.com\xff",
	"exa\u00admple\u00ad.\u00ad", // soft hyphens are ignored, leaving an empty label
	"a＠b.example",
	"a／b.example",

	// Resourcepart.
	"example.com/a\x00",
	"example.com/a\x7f",
	"example.com/a\tb",
	"example.com/\xff",
	"example.com/a\u200bb", // zero width space: disallowed in OpaqueString? see test

	// Length limits, one past.
	strings.Repeat("a", 1024) + "@example.com",
	"example.com/" + strings.Repeat("r", 1024),
	strings.Repeat("b", 64) + ".example",
	longDomain(1024),
	strings.Repeat("a", 1023) + "é@example.com",
	strings.Repeat("ａ", 1024) + "@example.com", // shrinks to 1024 bytes
	strings.Repeat("ａ", 2000) + "@example.com", // too long before preparation
}

// longDomain returns an LDH domain name of exactly n octets made of labels
// of at most 63 octets.
func longDomain(n int) string {
	unit := strings.Repeat("x", 63) + "."
	k, r := n/64, n%64
	if r == 0 {
		// End in "62 x's, dot, x" instead of an empty label.
		return strings.Repeat(unit, k-1) + strings.Repeat("x", 62) + ".x"
	}
	return strings.Repeat(unit, k) + strings.Repeat("x", r)
}

func TestLongDomain(t *testing.T) {
	for _, n := range []int{1, 63, 64, 65, 1023, 1024} {
		d := longDomain(n)
		if got := len(d); got != n {
			t.Fatalf("len(longDomain(%d)) = %d", n, got)
		}
		if n <= maxPart && !domainFast(d) {
			t.Errorf("longDomain(%d) = %q is not a plain LDH domain", n, d)
		}
	}
}

func TestParseValid(t *testing.T) {
	for _, tc := range validTests {
		j, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got, want := j.String(), tc.want; got != want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, want)
		}
		if got, want := j.Local(), tc.local; got != want {
			t.Errorf("Parse(%q).Local() = %q, want %q", tc.in, got, want)
		}
		if got, want := j.Domain(), tc.domain; got != want {
			t.Errorf("Parse(%q).Domain() = %q, want %q", tc.in, got, want)
		}
		if got, want := j.Resource(), tc.resource; got != want {
			t.Errorf("Parse(%q).Resource() = %q, want %q", tc.in, got, want)
		}
		n, err := New(tc.local, tc.domain, tc.resource)
		if err != nil {
			t.Errorf("New(%q, %q, %q): %v", tc.local, tc.domain, tc.resource, err)
		} else if n != j {
			t.Errorf("New(%q, %q, %q) = %q, want %q", tc.local, tc.domain, tc.resource, n, j)
		}
		again, err := Parse(j.String())
		if err != nil || again != j {
			t.Errorf("Parse(%q) = %q, %v; want %q", j.String(), again, err, j)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	for _, in := range invalidTests {
		j, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) = %q, want error", in, j)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) error %v does not match ErrMalformed", in, err)
		}
		if !j.IsZero() {
			t.Errorf("Parse(%q) returned non-zero JID %q with error", in, j)
		}
		if !strings.HasPrefix(err.Error(), "jid: malformed ") {
			t.Errorf("Parse(%q) error %q lacks the package prefix", in, err)
		}
	}
}

func TestEquality(t *testing.T) {
	tests := [][]string{
		{"juliet@example.com", "JULIET@EXAMPLE.COM", "Juliet@example.com.", "ＪＵＬＩＥＴ@ｅｘａｍｐｌｅ.com"},
		{"juliet@café.example/r", "juliet@xn--caf-dma.example/r", "juliet@CAFÉ.EXAMPLE./r"},
		{"[::1]", "[0::1]", "[0:0:0:0:0:0:0:1]."},
	}
	for _, group := range tests {
		m := map[JID]int{}
		for _, s := range group {
			m[MustParse(s)]++
		}
		if got, want := len(m), 1; got != want {
			t.Errorf("%q gave %d distinct JIDs, want %d: %v", group, got, want, m)
		}
	}
	if MustParse("a@example.com/R") == MustParse("a@example.com/r") {
		t.Error("resourceparts differing in case compare equal")
	}
	if MustParse("a@example.com") == MustParse("example.com/a") {
		t.Error("a@example.com == example.com/a")
	}
}

func TestParts(t *testing.T) {
	full := MustParse("Juliet@Example.com/Balcony")
	tests := []struct {
		name                 string
		j                    JID
		str                  string
		zero, bare, fullJID  bool
		local, domain, resrc string
	}{
		{"zero", JID{}, "", true, false, false, "", "", ""},
		{"full", full, "juliet@example.com/Balcony", false, false, true, "juliet", "example.com", "Balcony"},
		{"bare", full.Bare(), "juliet@example.com", false, true, false, "juliet", "example.com", ""},
		{"domainpart", full.Domainpart(), "example.com", false, true, false, "", "example.com", ""},
		{"bare of bare", full.Bare().Bare(), "juliet@example.com", false, true, false, "juliet", "example.com", ""},
		{"domain with resource", MustParse("example.com/r"), "example.com/r", false, false, true, "", "example.com", "r"},
		{"domain with resource, bare", MustParse("example.com/r").Bare(), "example.com", false, true, false, "", "example.com", ""},
		{"zero bare", JID{}.Bare(), "", true, false, false, "", "", ""},
		{"zero domainpart", JID{}.Domainpart(), "", true, false, false, "", "", ""},
	}
	for _, tc := range tests {
		j := tc.j
		if got, want := j.String(), tc.str; got != want {
			t.Errorf("%s: String() = %q, want %q", tc.name, got, want)
		}
		if got, want := j.IsZero(), tc.zero; got != want {
			t.Errorf("%s: IsZero() = %v, want %v", tc.name, got, want)
		}
		if got, want := j.IsBare(), tc.bare; got != want {
			t.Errorf("%s: IsBare() = %v, want %v", tc.name, got, want)
		}
		if got, want := j.IsFull(), tc.fullJID; got != want {
			t.Errorf("%s: IsFull() = %v, want %v", tc.name, got, want)
		}
		if got, want := j.Local(), tc.local; got != want {
			t.Errorf("%s: Local() = %q, want %q", tc.name, got, want)
		}
		if got, want := j.Domain(), tc.domain; got != want {
			t.Errorf("%s: Domain() = %q, want %q", tc.name, got, want)
		}
		if got, want := j.Resource(), tc.resrc; got != want {
			t.Errorf("%s: Resource() = %q, want %q", tc.name, got, want)
		}
		if !j.IsZero() {
			if p := MustParse(tc.str); p != j {
				t.Errorf("%s: Parse(String()) = %#v, want %#v", tc.name, p, j)
			}
		}
	}
	if got, want := full.Bare(), MustParse("juliet@example.com"); got != want {
		t.Errorf("Bare() = %#v, want %#v", got, want)
	}
	if got, want := full.Domainpart(), MustParse("example.com"); got != want {
		t.Errorf("Domainpart() = %#v, want %#v", got, want)
	}
}

func TestWithResource(t *testing.T) {
	tests := []struct {
		j    JID
		r    string
		want string // "" means error
	}{
		{MustParse("juliet@example.com"), "balcony", "juliet@example.com/balcony"},
		{MustParse("juliet@example.com/old"), "new", "juliet@example.com/new"},
		{MustParse("example.com"), "r", "example.com/r"},
		{MustParse("juliet@example.com"), "x\u3000y", "juliet@example.com/x y"},
		{MustParse("juliet@example.com"), "a/b@c", "juliet@example.com/a/b@c"},
		{MustParse("juliet@example.com"), "", ""},
		{MustParse("juliet@example.com"), "a\x00", ""},
		{MustParse("juliet@example.com"), strings.Repeat("r", 1024), ""},
		{JID{}, "r", ""},
	}
	for _, tc := range tests {
		got, err := tc.j.WithResource(tc.r)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrMalformed) {
				t.Errorf("%q.WithResource(%q) = %q, %v; want ErrMalformed", tc.j, tc.r, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q.WithResource(%q): %v", tc.j, tc.r, err)
			continue
		}
		if want := MustParse(tc.want); got != want {
			t.Errorf("%q.WithResource(%q) = %#v, want %#v", tc.j, tc.r, got, want)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		local, domain, resource string
		want                    string // "" means error
	}{
		{"", "example.com", "", "example.com"},
		{"Juliet", "Example.com.", "R", "juliet@example.com/R"},
		{"", "example.com", "r", "example.com/r"},
		{"a", "[::1]", "", "a@[::1]"},
		{"", "", "", ""},
		{"a", "", "r", ""},
		{"a@b", "example.com", "", ""},
		{"a/b", "example.com", "", ""},
		{"a", "b@example.com", "", ""},
		{"a", "example.com/r", "", ""},
		{"a", "example.com", "\x00", ""},
	}
	for _, tc := range tests {
		got, err := New(tc.local, tc.domain, tc.resource)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrMalformed) {
				t.Errorf("New(%q, %q, %q) = %q, %v; want ErrMalformed", tc.local, tc.domain, tc.resource, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q, %q, %q): %v", tc.local, tc.domain, tc.resource, err)
			continue
		}
		if want := MustParse(tc.want); got != want {
			t.Errorf("New(%q, %q, %q) = %#v, want %#v", tc.local, tc.domain, tc.resource, got, want)
		}
	}
}

func TestPrepare(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string) (string, error)
		in   string
		want string // "" means error
	}{
		{"local", PrepareLocal, "Juliet", "juliet"},
		{"local", PrepareLocal, "ＪＵＬＩＥＴ", "juliet"},
		{"local", PrepareLocal, "juliet", "juliet"},
		{"local", PrepareLocal, "", ""},
		{"local", PrepareLocal, "a@b", ""},
		{"local", PrepareLocal, "a b", ""},
		{"domain", PrepareDomain, "Example.COM.", "example.com"},
		{"domain", PrepareDomain, "xn--caf-dma.example", "café.example"},
		{"domain", PrepareDomain, "[::0:1]", "[::1]"},
		{"domain", PrepareDomain, "", ""},
		{"domain", PrepareDomain, "a..b", ""},
		{"resource", PrepareResource, "Balcony", "Balcony"},
		{"resource", PrepareResource, "", ""},
	}
	for _, tc := range tests {
		got, err := tc.fn(tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrMalformed) {
				t.Errorf("Prepare %s(%q) = %q, %v; want ErrMalformed", tc.name, tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Prepare %s(%q) = %q, %v; want %q", tc.name, tc.in, got, err, tc.want)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse(\"@\") did not panic")
		}
	}()
	MustParse("@")
}

func TestText(t *testing.T) {
	type doc struct {
		Admin JID   `json:"admin"`
		Peers []JID `json:"peers"`
		None  JID   `json:"none"`
	}
	in := `{"admin":"Admin@Example.com","peers":["a@b/c","[::1]"],"none":""}`
	var d doc
	if err := json.Unmarshal([]byte(in), &d); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if got, want := d.Admin, MustParse("admin@example.com"); got != want {
		t.Errorf("Admin = %q, want %q", got, want)
	}
	if !d.None.IsZero() {
		t.Errorf("None = %q, want zero", d.None)
	}
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if got, want := string(out), `{"admin":"admin@example.com","peers":["a@b/c","[::1]"],"none":""}`; got != want {
		t.Errorf("marshal = %s, want %s", got, want)
	}
	if err := json.Unmarshal([]byte(`{"admin":"@x"}`), &d); !errors.Is(err, ErrMalformed) {
		t.Errorf("unmarshal bad JID: %v, want ErrMalformed", err)
	}
	b, err := MustParse("a@b/c").AppendText([]byte("to="))
	if err != nil || string(b) != "to=a@b/c" {
		t.Errorf("AppendText = %q, %v", b, err)
	}
}

// TestNoAllocs checks that the hot path allocates nothing.
func TestNoAllocs(t *testing.T) {
	for _, s := range []string{"juliet@example.com/balcony", "example.com", "juliet@example.com"} {
		var j JID
		allocs := testing.AllocsPerRun(100, func() {
			j, _ = Parse(s)
			_ = j.Bare().String()
			_ = j.Domainpart().String()
		})
		if allocs != 0 {
			t.Errorf("Parse(%q): %v allocs, want 0", s, allocs)
		}
	}
}

func TestErrorUnwrap(t *testing.T) {
	_, err := Parse("henryⅣ@example.com")
	if err == nil {
		t.Fatal("no error")
	}
	if errors.Unwrap(err) == nil {
		t.Errorf("error %v does not carry the PRECIS cause", err)
	}
}
