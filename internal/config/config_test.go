package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// valid returns a Config that passes Validate.
func valid() Config {
	c := Default()
	c.Domain = "example.org"
	return c
}

func TestWriteDefaultRoundTrip(t *testing.T) {
	for _, tc := range []struct{ domain, listen string }{
		{"example.org", ""},
		{"chat.example.org", "192.168.1.5"},
		{"10.0.0.1", "::1"},
		{"pi", "0.0.0.0"},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteDefault(dir, tc.domain, tc.listen); err != nil {
				t.Fatalf("WriteDefault: %v", err)
			}
			want := Default()
			want.Domain = tc.domain
			want.Listen = tc.listen

			// Loaded back over the defaults.
			got, err := Load(dir)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got.Dir != dir {
				t.Errorf("Dir = %q, want %q", got.Dir, dir)
			}
			got.Dir = ""
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("Load(WriteDefault) =\n%+v\nwant\n%+v", *got, want)
			}

			// Decoded onto a zero Config: every value must come from the
			// file, and every setting must be in it.
			text, err := os.ReadFile(filepath.Join(dir, FileName))
			if err != nil {
				t.Fatal(err)
			}
			var zero Config
			md, err := toml.Decode(string(text), &zero)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(zero, want) {
				t.Errorf("decode onto zero Config =\n%+v\nwant\n%+v", zero, want)
			}
			if und := md.Undecoded(); len(und) > 0 {
				t.Errorf("file has keys Config does not: %v", und)
			}
			for _, key := range tomlKeys(reflect.TypeFor[Config](), nil) {
				if !md.IsDefined(key...) {
					t.Errorf("setting %s missing from the default file", strings.Join(key, "."))
				}
			}
		})
	}
}

// tomlKeys lists the TOML keys of the leaf fields of struct type t.
func tomlKeys(t reflect.Type, prefix []string) [][]string {
	var keys [][]string
	for f := range t.Fields() {
		name := f.Tag.Get("toml")
		if name == "-" || name == "" {
			continue
		}
		key := append(append([]string(nil), prefix...), name)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
			keys = append(keys, tomlKeys(f.Type, key)...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// TestDefaultFileComments checks that every setting in the default file
// has a comment line right above it.
func TestDefaultFileComments(t *testing.T) {
	dir := t.TempDir()
	if err := WriteDefault(dir, "example.org", ""); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(text), "\n")
	settings := 0
	for i, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "[s2s.routes]") {
			// a table of its own (a map): counted as one setting
			settings++
			if !strings.HasPrefix(lines[i-1], "# ") {
				t.Errorf("line %d %q has no comment above it", i+1, l)
			}
			continue
		}
		if strings.HasPrefix(l, "[") {
			continue
		}
		settings++
		if i == 0 || !strings.HasPrefix(lines[i-1], "# ") {
			t.Errorf("line %d %q has no comment above it", i+1, l)
		}
	}
	if got, want := settings, len(tomlKeys(reflect.TypeFor[Config](), nil)); got != want {
		t.Errorf("default file has %d settings, want %d", got, want)
	}
}

func TestWriteDefaultFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := WriteDefault(dir, "example.org", ""); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{
			dir:                          0o700 | os.ModeDir,
			filepath.Join(dir, FileName): 0o600,
		} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode(); got != want {
				t.Errorf("mode of %s = %v, want %v", path, got, want)
			}
		}
	}
	err := WriteDefault(dir, "other.org", "")
	if !errors.Is(err, os.ErrExist) {
		t.Errorf("second WriteDefault = %v, want an error wrapping os.ErrExist", err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Domain, "example.org"; got != want {
		t.Errorf("domain after refused overwrite = %q, want %q", got, want)
	}
}

func TestWriteDefaultInvalid(t *testing.T) {
	for _, tc := range []struct{ domain, listen, want string }{
		{"", "", "domain: is not set"},
		{"bad domain", "", `domain: "bad domain" is not a DNS name`},
		{"example.org", "localhost", `listen: "localhost" is not an IP address`},
	} {
		dir := t.TempDir()
		err := WriteDefault(dir, tc.domain, tc.listen)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WriteDefault(%q, %q) = %v, want error containing %q", tc.domain, tc.listen, err, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("WriteDefault(%q, %q) left a file behind (stat: %v)", tc.domain, tc.listen, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   []string // each must appear in the error; none = valid
	}{
		{"default with domain", func(*Config) {}, nil},
		{"ipv4 domain", func(c *Config) { c.Domain = "192.168.1.5" }, nil},
		{"ipv6 domain", func(c *Config) { c.Domain = "fd00::1" }, nil},
		{"single label", func(c *Config) { c.Domain = "raspberrypi" }, nil},
		{"punycode", func(c *Config) { c.Domain = "xn--bcher-kva.example" }, nil},
		{"listen ipv6", func(c *Config) { c.Listen = "::" }, nil},
		{"ports off", func(c *Config) { c.C2S.DirectTLSPort, c.HTTPS.Port = 0, 0 }, nil},
		{"open", func(c *Config) { c.Registration = RegistrationOpen }, nil},
		{"closed", func(c *Config) { c.Registration = RegistrationClosed }, nil},
		{"cluster", func(c *Config) { c.Cluster = clusterOf("a", "10.0.0.1:7422", "10.0.0.2:7422") }, nil},
		{"cluster name", func(c *Config) { c.Cluster = clusterOf("Node A", "10.0.0.1:7422", "10.0.0.2:7422") }, []string{`cluster.name: "Node A" must be`}},
		{"cluster listen", func(c *Config) { c.Cluster = clusterOf("a", "10.0.0.1", "10.0.0.2:7422") }, []string{`cluster.listen: "10.0.0.1" is not host:port`}},
		{"cluster no peers", func(c *Config) { c.Cluster = clusterOf("a", "10.0.0.1:7422") }, []string{"cluster.peers: [] is empty"}},
		{"cluster self peer", func(c *Config) { c.Cluster = clusterOf("a", "10.0.0.1:7422", "10.0.0.1:7422") }, []string{"is this node's own cluster.listen"}},
		{"cluster replicas", func(c *Config) {
			c.Cluster = clusterOf("a", "10.0.0.1:7422", "10.0.0.2:7422")
			c.Cluster.Replicas = 7
		}, []string{"cluster.replicas: 7 is out of range"}},
		{"cluster leaf without listen", func(c *Config) {
			c.Cluster = clusterOf("pi", "", "10.0.0.1:7423")
			c.Cluster.Leaf = true
		}, nil},
		{"cluster leaf accepting leaves", func(c *Config) {
			c.Cluster = clusterOf("pi", "", "10.0.0.1:7423")
			c.Cluster.Leaf, c.Cluster.LeafListen = true, "0.0.0.0:7423"
		}, []string{"cluster.leaf_listen: \"0.0.0.0:7423\" is set on a leaf node"}},
		{"cluster full node without listen", func(c *Config) { c.Cluster = clusterOf("a", "", "10.0.0.2:7422") }, []string{`cluster.listen: is not host:port`}},
		{"cluster leaf_listen", func(c *Config) {
			c.Cluster = clusterOf("a", "10.0.0.1:7422", "10.0.0.2:7422")
			c.Cluster.LeafListen = "7423"
		}, []string{`cluster.leaf_listen: "7423" is not host:port`}},
		{"cluster max_clients", func(c *Config) {
			c.Cluster = clusterOf("a", "10.0.0.1:7422", "10.0.0.2:7422")
			c.Cluster.MaxClients = -1
		}, []string{"cluster.max_clients: -1 is negative"}},
		{"no cluster ignores its settings", func(c *Config) { c.Cluster.Listen = "nonsense" }, nil},
		{"no domain", func(c *Config) { c.Domain = "" }, []string{"domain: is not set"}},
		{"upper case", func(c *Config) { c.Domain = "Example.org" }, []string{`domain: "Example.org" must be lower case ("example.org")`}},
		{"trailing dot", func(c *Config) { c.Domain = "example.org." }, []string{`domain: "example.org." is not a DNS name`}},
		{"underscore", func(c *Config) { c.Domain = "my_host" }, []string{`domain: "my_host" is not a DNS name`}},
		{"hyphen", func(c *Config) { c.Domain = "-a.org" }, []string{`domain: "-a.org" is not a DNS name`}},
		{"unicode", func(c *Config) { c.Domain = "bücher.example" }, []string{"xn-- form"}},
		{"long label", func(c *Config) { c.Domain = strings.Repeat("a", 64) + ".org" }, []string{"longer than 63"}},
		{"long name", func(c *Config) { c.Domain = strings.Repeat("a.", 127) + "org" }, []string{"longer than 253"}},
		{"zone", func(c *Config) { c.Domain = "fe80::1%eth0" }, []string{"zone"}},
		{"listen name", func(c *Config) { c.Listen = "localhost" }, []string{`listen: "localhost" is not an IP address`}},
		{"listen with port", func(c *Config) { c.Listen = "0.0.0.0:5222" }, []string{`listen: "0.0.0.0:5222" is not an IP address`}},
		{"registration", func(c *Config) { c.Registration = "invites" }, []string{`registration: "invites" is not one of`}},
		{"c2s port high", func(c *Config) { c.C2S.Port = 70000 }, []string{"c2s.port: 70000 is not a port (1-65535)"}},
		{"c2s port zero", func(c *Config) { c.C2S.Port = 0 }, []string{"c2s.port: 0 is not a port (1-65535)"}},
		{"direct tls negative", func(c *Config) { c.C2S.DirectTLSPort = -1 }, []string{"c2s.direct_tls_port: -1 is not a port (1-65535, or 0 for off)"}},
		{"https port high", func(c *Config) { c.HTTPS.Port = 65536 }, []string{"https.port: 65536 is not a port"}},
		{"port clash", func(c *Config) { c.HTTPS.Port = 5222 }, []string{"https.port: 5222 is also used by c2s.port"}},
		{"port clash direct", func(c *Config) { c.C2S.DirectTLSPort = 5222 }, []string{"c2s.direct_tls_port: 5222 is also used by c2s.port"}},
		{"scram low", func(c *Config) { c.C2S.ScramIterations = 1000 }, []string{"c2s.scram_iterations: 1000 is out of range"}},
		{"max conns", func(c *Config) { c.C2S.MaxConnections = 0 }, []string{"c2s.max_connections: 0 must be at least 1"}},
		{"no cert", func(c *Config) { c.TLS.Cert = "" }, []string{"tls.cert: is not set"}},
		{"no key", func(c *Config) { c.TLS.Key = "" }, []string{"tls.key: is not set"}},
		{"no database", func(c *Config) { c.Storage.Database = "" }, []string{"storage.database: is not set"}},
		{"offline negative", func(c *Config) { c.Storage.OfflineMax = -1 }, []string{"storage.offline_max: -1 must not be negative"}},
		{"stanza small", func(c *Config) { c.Limits.StanzaBytes, c.Limits.PreAuthStanzaBytes = 9999, 2048 }, []string{"limits.stanza_bytes: 9999 is below 10000"}},
		{"preauth small", func(c *Config) { c.Limits.PreAuthStanzaBytes = 100 }, []string{"limits.preauth_stanza_bytes: 100 is below 1024"}},
		{"preauth above", func(c *Config) { c.Limits.PreAuthStanzaBytes = c.Limits.StanzaBytes + 1 }, []string{"limits.preauth_stanza_bytes: 262145 is above limits.stanza_bytes"}},
		{"depth", func(c *Config) { c.Limits.Depth = 2 }, []string{"limits.depth: 2 is below 8"}},
		{"attrs", func(c *Config) { c.Limits.Attrs = 0 }, []string{"limits.attrs: 0 is below 8"}},
		{"rate", func(c *Config) { c.Limits.StanzasPerSecond = 0 }, []string{"limits.stanzas_per_second: 0 must be at least 1"}},
		{"handshake", func(c *Config) { c.Limits.HandshakeTimeout = Duration{time.Millisecond} }, []string{`limits.handshake_timeout: "1ms" is shorter than 1s`}},
		{"stanza timeout", func(c *Config) { c.Limits.StanzaTimeout = Duration{0} }, []string{`limits.stanza_timeout: "0s" is shorter than 1s`}},
		{"memory small", func(c *Config) { c.Limits.Memory = 8 << 20 }, []string{`limits.memory: "8MB" is below 16MB`}},
		{"memory bytes", func(c *Config) { c.Limits.Memory = 64 }, []string{`limits.memory: "64B" is below 16MB`}},
		{"memory at least", func(c *Config) { c.Limits.Memory = 16 << 20 }, nil},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, []string{`log.level: "verbose" is not one of`}},
		{"several", func(c *Config) {
			c.Domain = ""
			c.C2S.Port = 70000
			c.Log.Level = ""
		}, []string{"domain: is not set", "c2s.port: 70000 is not a port", "log.level: is not one of"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.modify(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			// Every joined error is a *FieldError, one per problem.
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("Validate() = %T, want a joined error", err)
			}
			if got, want := len(joined.Unwrap()), len(tc.want); got != want {
				t.Errorf("Validate() gave %d problems (%q), want %d", got, err, want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("Validate() error %T holds no *FieldError", err)
			}
		})
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoad(t *testing.T) {
	env := map[string]string{"DOMAIN": "env.example", "EMPTY": "", "PORT": "6222"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		name  string
		text  string
		check func(*Config) bool
	}{
		{"minimal", `domain = "example.org"`, func(c *Config) bool {
			w := valid()
			w.Dir = c.Dir
			return reflect.DeepEqual(*c, w)
		}},
		{"section", "domain = \"example.org\"\n[c2s]\nport = 15222\n", func(c *Config) bool {
			return c.C2S.Port == 15222 && c.C2S.DirectTLSPort == 5223
		}},
		{"duration", "domain = \"example.org\"\n[limits]\nhandshake_timeout = \"1m30s\"\n", func(c *Config) bool {
			return c.Limits.HandshakeTimeout.Duration == 90*time.Second
		}},
		{"memory", "domain = \"example.org\"\n[limits]\nmemory = \"64MB\"\n", func(c *Config) bool {
			return c.Limits.Memory == 64<<20
		}},
		{"memory bytes", "domain = \"example.org\"\n[limits]\nmemory = 33554432\n", func(c *Config) bool {
			return c.Limits.Memory == 32<<20
		}},
		{"memory none", "domain = \"example.org\"\n[limits]\nmemory = 0\n", func(c *Config) bool {
			return c.Limits.Memory == 0
		}},
		{"env", "domain = \"${DOMAIN}\"\nlisten = \"${EMPTY}\"\n[c2s]\nport = ${PORT}\n", func(c *Config) bool {
			return c.Domain == "env.example" && c.Listen == "" && c.C2S.Port == 6222
		}},
		{"env in comment ignored", "# uses ${UNSET}\n  # and $$ and ${}\ndomain = \"example.org\"\n", func(c *Config) bool {
			return c.Domain == "example.org"
		}},
		{"dollar escape", "domain = \"example.org\"\n[tls]\ncert = \"a$$b.pem\"\n", func(c *Config) bool {
			return c.TLS.Cert == "a$b.pem"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeConfig(t, tc.text)
			c, err := load(dir, lookup)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !tc.check(c) {
				t.Errorf("load gave %+v", *c)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	lookup := func(k string) (string, bool) { return "", false }
	for _, tc := range []struct {
		name string
		text string
		want []string
	}{
		{"unknown key", "domain = \"example.org\"\nfoo = 1\n", []string{"unknown keys", "foo"}},
		{"unknown nested key", "domain = \"example.org\"\n[c2s]\nprot = 5222\n", []string{"unknown keys", "c2s.prot"}},
		{"unknown table", "domain = \"example.org\"\n[s3s]\nport = 5269\nenabled = true\n", []string{"unknown keys", "s3s.port, s3s.enabled"}},
		{"misplaced key", "domain = \"example.org\"\n[c2s]\nlevel = \"info\"\n", []string{"c2s.level"}},
		{"bad duration", "domain = \"example.org\"\n[limits]\nhandshake_timeout = \"30 sec\"\n", []string{"line 3", "limits.handshake_timeout", `"30 sec" is not a duration`}},
		{"bad memory", "domain = \"example.org\"\n[limits]\nmemory = \"64 megs\"\n", []string{"line 3", "limits.memory", `"64 megs" is not a size`}},
		{"memory negative", "domain = \"example.org\"\n[limits]\nmemory = -1\n", []string{"limits.memory", `"-1" is not a size`}},
		{"duration as number", "domain = \"example.org\"\n[limits]\nhandshake_timeout = 30\n", []string{"limits.handshake_timeout", `"30" is not a duration`}},
		{"bad port", "domain = \"example.org\"\n[c2s]\nport = 70000\n", []string{"c2s.port: 70000 is not a port (1-65535)"}},
		{"port as string", "domain = \"example.org\"\n[c2s]\nport = \"5222\"\n", []string{"line 3", "c2s.port", "incompatible types"}},
		{"syntax", "domain = example.org\n", []string{"line 1"}},
		{"no domain", "", []string{"domain: is not set"}},
		{"unset env", "domain = \"x\"\nlisten = \"${LISTEN_IP}\"\n", []string{"line 2: environment variable LISTEN_IP is not set"}},
		{"bare dollar var", "domain = \"a$b\"\n", []string{"environment variable b is not set"}},
		{"several problems", "domain = \"Bad\"\n[https]\nport = 5222\n", []string{`domain: "Bad" must be lower case`, "https.port: 5222 is also used by c2s.port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeConfig(t, tc.text)
			_, err := load(dir, lookup)
			if err == nil {
				t.Fatalf("load succeeded, want error containing %q", tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, filepath.Join(dir, FileName)) {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of empty dir = %v, want an error wrapping os.ErrNotExist", err)
	}
	if err != nil && !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestLoadRelativeDir(t *testing.T) {
	dir := writeConfig(t, `domain = "example.org"`)
	t.Chdir(filepath.Dir(dir))
	c, err := Load(filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Dir, dir; got != want {
		t.Errorf("Dir = %q, want absolute %q", got, want)
	}
}

func TestPath(t *testing.T) {
	c := Config{Dir: "/var/lib/casp3r"}
	for _, tc := range []struct{ in, want string }{
		{"tls/cert.pem", "/var/lib/casp3r/tls/cert.pem"},
		{"casp3r.db", "/var/lib/casp3r/casp3r.db"},
		{"../other/x", "/var/lib/other/x"},
		{"/etc/ssl/cert.pem", "/etc/ssl/cert.pem"},
		{"", ""},
	} {
		if got := c.Path(tc.in); got != tc.want {
			t.Errorf("Path(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct {
		listen string
		port   int
		want   string
	}{
		{"", 5222, ":5222"},
		{"192.168.1.5", 5223, "192.168.1.5:5223"},
		{"::1", 5443, "[::1]:5443"},
	} {
		c := Config{Listen: tc.listen}
		if got := c.ListenAddr(tc.port); got != tc.want {
			t.Errorf("ListenAddr(%d) with listen %q = %q, want %q", tc.port, tc.listen, got, tc.want)
		}
	}
}

func TestByteSizeText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		out  string // MarshalText of want
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"64MB", 64 << 20, "64MB"},
		{"64mb", 64 << 20, "64MB"},
		{"64 MiB", 64 << 20, "64MB"},
		{"64M", 64 << 20, "64MB"},
		{" 1GB ", 1 << 30, "1GB"},
		{"1536MB", 1536 << 20, "1536MB"},
		{"2048MB", 2 << 30, "2GB"},
		{"512KiB", 512 << 10, "512KB"},
		{"1000", 1000, "1000B"},
		{"1024B", 1024, "1KB"},
	} {
		var got ByteSize
		if err := got.UnmarshalText([]byte(tc.in)); err != nil {
			t.Errorf("UnmarshalText(%q) = %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("UnmarshalText(%q) = %d, want %d", tc.in, got, tc.want)
		}
		text, err := got.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if string(text) != tc.out {
			t.Errorf("MarshalText(%d) = %q, want %q", got, text, tc.out)
		}
		var back ByteSize
		if err := back.UnmarshalText(text); err != nil || back != got {
			t.Errorf("round trip of %q = %d, %v; want %d", text, back, err, got)
		}
	}
	for _, in := range []string{"MB", "-1MB", "1.5GB", "64 megs", "1TB", "99999999999GB", "0x10"} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("UnmarshalText(%q) = %d, want an error", in, b)
		}
	}
}

func TestDurationText(t *testing.T) {
	d := Duration{90 * time.Second}
	text, err := d.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(text), "1m30s"; got != want {
		t.Errorf("MarshalText = %q, want %q", got, want)
	}
	var back Duration
	if err := back.UnmarshalText(text); err != nil {
		t.Fatal(err)
	}
	if back != d {
		t.Errorf("round trip = %v, want %v", back, d)
	}
}

func TestTOMLString(t *testing.T) {
	for _, s := range []string{"", "plain", `a"b`, `c:\path`, "tab\there", "nl\n", "\x7f", "ünï"} {
		var v struct{ S string }
		if _, err := toml.Decode("S = "+tomlString(s), &v); err != nil {
			t.Errorf("decode %s: %v", tomlString(s), err)
			continue
		}
		if v.S != s {
			t.Errorf("tomlString(%q) decodes to %q", s, v.S)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`domain = "example.org"`)
	f.Add("domain = \"${X}\"\n[c2s]\nport = 5222\n[limits]\nhandshake_timeout = \"1s\"\n")
	f.Add("$$ ${ ${} $1 $")
	lookup := func(k string) (string, bool) { return "v", k == "X" }
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parse(text, lookup)
		if err != nil {
			return
		}
		_ = c.Validate() // must not panic
	})
}

func clusterOf(name, listen string, peers ...string) Cluster {
	c := Default().Cluster
	c.Name, c.Listen, c.Peers = name, listen, append([]string{}, peers...)
	return c
}

// TestWriteClusterRoundTrip checks that a node's [cluster] section, as
// casp3r init writes it, loads back unchanged.
func TestWriteClusterRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := Default()
	want.Domain, want.Listen = "example.org", "10.0.0.1"
	want.Cluster = clusterOf("node-a", "10.0.0.1:7422", "10.0.0.2:7422", "[fd00::3]:7422")
	if err := Write(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Cluster, want.Cluster) {
		t.Errorf("cluster = %+v, want %+v", got.Cluster, want.Cluster)
	}
	bad := want
	bad.Cluster.Name = "Bad Name"
	if err := Write(t.TempDir(), bad); err == nil {
		t.Errorf("Write accepted an invalid cluster name")
	}
}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		text string
		vals map[string]string
		want string // "" = an error
	}{
		{"a = {{x}}\nb = {{y}}\n", map[string]string{"x": "1", "y": `"2"`}, "a = 1\nb = \"2\"\n"},
		{"a = {{x}}", map[string]string{}, ""},                   // no value
		{"a = {{x}}", map[string]string{"x": "1", "y": "2"}, ""}, // unused value
		{"a = {{x", map[string]string{"x": "1"}, ""},             // unclosed
	} {
		got, err := render(tc.text, tc.vals)
		if tc.want == "" {
			if err == nil {
				t.Errorf("render(%q) = %q, want an error", tc.text, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("render(%q) = %q, %v; want %q", tc.text, got, err, tc.want)
		}
	}
}
