package sasl

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

func TestNewCredentials(t *testing.T) {
	c, err := NewCredentials("pencil", testIters)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		name string
		keys ScramKeys
		h    scram.HashGeneratorFcn
		size int
	}{
		{"SHA-1", c.SHA1, scram.SHA1, 20},
		{"SHA-256", c.SHA256, scram.SHA256, 32},
	} {
		if got, want := len(k.keys.Salt), 16; got != want {
			t.Errorf("%s salt length = %d, want %d", k.name, got, want)
		}
		if got, want := k.keys.Iters, testIters; got != want {
			t.Errorf("%s iters = %d, want %d", k.name, got, want)
		}
		if len(k.keys.StoredKey) != k.size || len(k.keys.ServerKey) != k.size {
			t.Errorf("%s key sizes %d/%d, want %d", k.name, len(k.keys.StoredKey), len(k.keys.ServerKey), k.size)
		}
		// What xdg-go's client derives from the same salt must match.
		cl, err := k.h.NewClient("", "pencil", "")
		if err != nil {
			t.Fatal(err)
		}
		sc, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(k.keys.Salt), Iters: k.keys.Iters})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sc.StoredKey, k.keys.StoredKey) || !bytes.Equal(sc.ServerKey, k.keys.ServerKey) {
			t.Errorf("%s keys differ from xdg-go client's", k.name)
		}
	}
	if bytes.Equal(c.SHA1.Salt, c.SHA256.Salt) {
		t.Errorf("SHA-1 and SHA-256 share a salt")
	}
	d, err := NewCredentials("pencil", testIters)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c.SHA256.Salt, d.SHA256.Salt) || bytes.Equal(c.SHA256.StoredKey, d.SHA256.StoredKey) {
		t.Errorf("two credentials for the same password share salt or keys")
	}
}

func TestNewCredentialsErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pass  string
		iters int
	}{
		{"empty", "", 0},
		{"negative iters", "pw", -1},
		{"maps to nothing", "\u00AD", 1},
		{"control character", "pass\x00word", 1},
	} {
		_, err := NewCredentials(tt.pass, tt.iters)
		if err == nil {
			t.Errorf("%s: NewCredentials succeeded", tt.name)
			continue
		}
		if tt.pass != "" && strings.Contains(err.Error(), tt.pass) {
			t.Errorf("%s: error %q reveals the password", tt.name, err)
		}
	}
}

func TestVerifyPlain(t *testing.T) {
	tests := []struct {
		name   string
		stored string
		try    string
		want   bool
	}{
		{"same", "correct horse", "correct horse", true},
		{"different", "correct horse", "correct horsE", false},
		{"empty", "correct horse", "", false},
		{"saslprep soft hyphen", "I\u00ADX", "IX", true},
		{"saslprep non-ascii space", "a\u00A0b", "a b", true},
		{"nfkc", "\u2168", "IX", true},
		{"emoji falls back to opaquestring", "pass\U0001F600word", "pass\U0001F600word", true},
		{"emoji wrong", "pass\U0001F600word", "pass\U0001F601word", false},
		{"control char never matches", "pw", "pw\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCredentials(tt.stored, testIters)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.VerifyPlain(tt.try); got != tt.want {
				t.Errorf("VerifyPlain(%q) = %v, want %v", tt.try, got, tt.want)
			}
		})
	}
	t.Run("sha1 only", func(t *testing.T) {
		c, err := NewCredentials("pw", testIters)
		if err != nil {
			t.Fatal(err)
		}
		c.SHA256 = ScramKeys{}
		if !c.VerifyPlain("pw") || c.VerifyPlain("px") {
			t.Errorf("VerifyPlain with SHA-1 keys only is wrong")
		}
	})
	t.Run("no keys", func(t *testing.T) {
		if (Credentials{}).VerifyPlain("pw") {
			t.Errorf("empty credentials verify")
		}
	})
}

func TestFailure(t *testing.T) {
	cause := errors.New("cause")
	f := &Failure{Condition: TemporaryAuthFailure, Text: "try <later> & 'again'", err: cause}
	var err error = f
	if !errors.Is(err, &Failure{Condition: TemporaryAuthFailure}) {
		t.Errorf("errors.Is by condition failed")
	}
	if errors.Is(err, &Failure{Condition: NotAuthorized}) {
		t.Errorf("errors.Is matched another condition")
	}
	if !errors.Is(err, cause) {
		t.Errorf("cause not unwrapped")
	}
	if got, want := f.Error(), "sasl: temporary-auth-failure: try <later> & 'again': cause"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	for _, tt := range []struct {
		f    *Failure
		want string
	}{
		{f, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><temporary-auth-failure/><text xml:lang='en'>try &lt;later&gt; &amp; &apos;again&apos;</text></failure>"},
		{&Failure{Condition: NotAuthorized}, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"},
		{&Failure{Condition: "<bogus>"}, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"},
		{&Failure{Condition: Aborted, Text: "a\x00b\xffc"}, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/><text xml:lang='en'>ab\uFFFDc</text></failure>"},
	} {
		if got := string(tt.f.AppendXML(nil)); got != tt.want {
			t.Errorf("AppendXML = %s\nwant %s", got, tt.want)
		}
	}
}

func TestAppendFeatures(t *testing.T) {
	if got, want := string(AppendMechanisms([]byte("x"), []string{ScramSHA256, Plain})),
		"x<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism><mechanism>PLAIN</mechanism></mechanisms>"; got != want {
		t.Errorf("AppendMechanisms = %s\nwant %s", got, want)
	}
	if got := AppendMechanisms(nil, nil); len(got) != 0 {
		t.Errorf("AppendMechanisms(nil) = %q", got)
	}
	if got, want := string(AppendChannelBindingFeature(nil, []string{TLSExporter, TLSServerEndPoint})),
		"<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/></sasl-channel-binding>"; got != want {
		t.Errorf("AppendChannelBindingFeature = %s\nwant %s", got, want)
	}
	if got := AppendChannelBindingFeature(nil, nil); len(got) != 0 {
		t.Errorf("AppendChannelBindingFeature(nil) = %q", got)
	}
}
