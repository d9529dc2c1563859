package c2s

import (
	"crypto/tls"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"casp3r/internal/jid"
	"casp3r/internal/sasl"
	"casp3r/internal/xmpptest"
)

// fakeRedirector answers every question with the same addr and redirect,
// and records the directTLS of each.
type fakeRedirector struct {
	addr     string
	redirect bool

	mu    sync.Mutex
	asked []bool
}

func (f *fakeRedirector) Redirect(directTLS bool) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, directTLS)
	return f.addr, f.redirect
}

func (f *fakeRedirector) questions() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.asked...)
}

// testTLSConfig is a throwaway self-signed certificate for example.test.
func testTLSConfig(t *testing.T) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{xmpptest.SelfSigned(t, "example.test")}}
}

// serveTest runs a client server with redirector r (none when nil) on a
// loopback port, plain or direct TLS, and returns its address.
func serveTest(t *testing.T, r Redirector, directTLS bool) string {
	t.Helper()
	srv := New(Config{
		Domain:           jid.MustParse("example.test"),
		TLS:              testTLSConfig(t),
		SASL:             &sasl.Server{},
		HandshakeTimeout: 5 * time.Second,
	})
	if r != nil {
		srv.SetRedirector(r)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l, directTLS) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(t.Context())
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

const testHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
	"xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>"

// streamID matches the random stream id of the server's header.
var streamID = regexp.MustCompile(` id='[^']*'`)

// firstWords opens a stream on addr (for STARTTLS: opens it, negotiates
// TLS and opens the next) and returns what the server writes after the
// last header it sent until it closes the connection (or, when it keeps it
// open, until the features), the stream id replaced by ID.
func firstWords(t *testing.T, addr string, directTLS bool) string {
	t.Helper()
	var conn net.Conn
	var err error
	if directTLS {
		conn, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "example.test"})
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	read := func() string {
		var got []byte
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil || regexp.MustCompile(`(</stream:features>|<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>)$`).Match(got) {
				return streamID.ReplaceAllString(string(got), " id='ID'")
			}
		}
	}
	if _, err := io.WriteString(conn, testHeader); err != nil {
		t.Fatal(err)
	}
	got := read()
	if directTLS {
		return got
	}
	if !strings.Contains(got, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'") || strings.Contains(got, "stream:error") {
		t.Fatalf("before TLS the server wrote %s, want the STARTTLS feature (no redirect in the clear)", got)
	}
	if _, err := io.WriteString(conn, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" {
		t.Fatalf("after <starttls/> the server wrote %s, want <proceed/>", got)
	}
	conn = tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "example.test"})
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, testHeader); err != nil {
		t.Fatal(err)
	}
	return read()
}

const wantHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
	"xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='example.test' id='ID' xml:lang='en'>"

// TestRedirect checks what a new client reads when the node is full: the
// exact see-other-host and resource-constraint stream errors (RFC 6120
// §4.9.3.19, §4.9.3.17), for STARTTLS (on the stream after TLS) and direct
// TLS.
func TestRedirect(t *testing.T) {
	tests := []struct {
		name      string
		r         *fakeRedirector // nil: no redirector
		directTLS bool
		want      string // after the header; "features" for a stream that goes on
	}{
		{
			name: "no redirector",
			want: "features",
		},
		{
			name: "room here",
			r:    &fakeRedirector{addr: "", redirect: false},
			want: "features",
		},
		{
			name: "starttls to ipv4",
			r:    &fakeRedirector{addr: "192.0.2.7:5222", redirect: true},
			want: "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>192.0.2.7:5222</see-other-host>" +
				"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>this node is full; please connect to 192.0.2.7:5222</text>" +
				"</stream:error></stream:stream>",
		},
		{
			name:      "direct tls to ipv6",
			r:         &fakeRedirector{addr: "[2001:db8::7]:5223", redirect: true},
			directTLS: true,
			want: "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[2001:db8::7]:5223</see-other-host>" +
				"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>this node is full; please connect to [2001:db8::7]:5223</text>" +
				"</stream:error></stream:stream>",
		},
		{
			name: "all full",
			r:    &fakeRedirector{addr: "", redirect: true},
			want: "<stream:error><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" +
				"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>every node of this server is full; please try again later</text>" +
				"</stream:error></stream:stream>",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Redirector
			if tc.r != nil {
				r = tc.r
			}
			addr := serveTest(t, r, tc.directTLS)
			got := firstWords(t, addr, tc.directTLS)
			rest, ok := strings.CutPrefix(got, wantHeader)
			if !ok {
				t.Fatalf("server's first words:\n%s\nwant the header\n%s", got, wantHeader)
			}
			if tc.want == "features" {
				if !regexp.MustCompile(`^<stream:features>.*</stream:features>$`).MatchString(rest) {
					t.Errorf("after the header:\n%s\nwant the stream features", rest)
				}
			} else if rest != tc.want {
				t.Errorf("after the header:\n%s\nwant\n%s", rest, tc.want)
			}
			if tc.r != nil {
				if got, want := tc.r.questions(), []bool{tc.directTLS}; len(got) != 1 || got[0] != want[0] {
					t.Errorf("redirector asked with directTLS = %v, want %v (once)", got, want)
				}
			}
		})
	}
}

// TestRedirectOnlyFirstStream: a client that stays is asked about once,
// on the stream after STARTTLS, not again when it restarts its stream
// after SASL.
func TestRedirectOnlyFirstStream(t *testing.T) {
	r := &fakeRedirector{}
	addr := serveTest(t, r, false)
	got := firstWords(t, addr, false)
	if !strings.HasSuffix(got, "</stream:features>") {
		t.Fatalf("after STARTTLS the server wrote %s, want the features", got)
	}
	if got := r.questions(); len(got) != 1 || got[0] {
		t.Errorf("redirector asked %v, want once with directTLS = false", got)
	}
}
