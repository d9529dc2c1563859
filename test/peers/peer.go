//go:build integration

package peers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// Password is the password of every account a peer creates.
	Password = "pw"

	// startTimeout bounds a peer's start, accounts included.
	startTimeout = 60 * time.Second
	// stopTimeout bounds how long a peer may take to exit on SIGTERM
	// before its process group gets SIGKILL.
	stopTimeout = 15 * time.Second
	// cmdTimeout bounds helper commands (prosodyctl shell, probes).
	cmdTimeout = 30 * time.Second
	// pollInterval is how often readiness conditions are checked.
	pollInterval = 20 * time.Millisecond
)

// Options describes one peer server.
type Options struct {
	// Addr is the address every listener binds to (c2s and s2s); it must
	// be an IPv4 address in 127.0.0.0/8.
	Addr string
	// Domain is the XMPP domain served, e.g. "prosody.test". Prefer .test
	// domains: Prosody then gets NXDOMAIN for SRV queries at once.
	Domain string
	// Users are the local parts of the accounts created at start, each
	// with password Password ("pw").
	Users []string
	// Hosts resolves s2s destinations; Domain→Addr is added to it. A peer
	// sees it as it is at start: add the other domains first, or call
	// ReloadDNS. Nil: a private file that knows only this peer's domain.
	Hosts *Hosts
	// CA, if set, issues the peer's certificate and is trusted for s2s
	// (by ejabberd alone; by Prosody next to the system's CAs). Peer
	// certificates are verified and s2s authenticates with SASL EXTERNAL.
	// Prosody (s2s_secure_auth) then refuses a peer whose certificate
	// fails, dialback or not; ejabberd falls back to dialback for such a
	// peer unless NoDialback. Nil: a self-signed certificate; s2s is
	// encrypted and authenticates with dialback.
	CA *CA
	// C2SPort and S2SPort default to 5222 and 5269. Both servers send
	// outgoing s2s to port 5269 (no SRV records exist), so a peer on
	// another S2SPort can accept s2s from, but is not reachable by, the
	// others.
	C2SPort, S2SPort int
	// NoDialback turns dialback (XEP-0220) off, in both directions: s2s
	// must then authenticate with SASL EXTERNAL, which needs CA.
	NoDialback bool
}

// Peer is a running Prosody or ejabberd.
type Peer struct {
	Kind             string // "prosody" or "ejabberd"
	Domain, Addr     string
	C2SPort, S2SPort int
	Dir              string // data directory: config, certificates, data, logs
	CertPath         string // the peer's certificate (PEM)
	KeyPath          string // its key (PEM)

	t           testing.TB
	hosts       *Hosts
	pid         int    // the server process; see Pid
	logPath     string // the server's own log
	consolePath string // stdout and stderr of the process
	cmd         *exec.Cmd
	exited      chan struct{} // closed when cmd has been reaped
	waitErr     error
	stopOnce    sync.Once
	adminSocket string // Prosody only
}

// JID returns local@Domain.
func (p *Peer) JID(local string) string { return local + "@" + p.Domain }

// Pid is the server process (Prosody's lua, ejabberd's beam.smp).
func (p *Peer) Pid() int { return p.pid }

// Log is the server's log so far.
func (p *Peer) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s log: %v)", p.Kind, err)
	}
	return string(b)
}

// Console is what the process printed on stdout and stderr.
func (p *Peer) Console() string {
	b, err := os.ReadFile(p.consolePath)
	if err != nil {
		return fmt.Sprintf("(read %s console: %v)", p.Kind, err)
	}
	return string(b)
}

// Stop ends the server: SIGTERM to its process group, SIGKILL after
// stopTimeout. It runs at most once; t.Cleanup calls it too.
func (p *Peer) Stop() {
	p.stopOnce.Do(p.stop)
}

func (p *Peer) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	pgid := p.cmd.Process.Pid // Setpgid: the group is named after the leader
	select {
	case <-p.exited:
		p.t.Errorf("%s had exited before Stop: %v", p, p.waitErr)
		return
	default:
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(stopTimeout):
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.exited
	p.t.Errorf("%s did not exit within %v of SIGTERM; killed", p, stopTimeout)
}

// String names the peer for messages.
func (p *Peer) String() string {
	return fmt.Sprintf("%s %s (%s c2s %d s2s %d)", p.Kind, p.Domain, p.Addr, p.C2SPort, p.S2SPort)
}

// newPeer checks o, fills in defaults and creates the data directory.
func newPeer(t testing.TB, kind string, o *Options) *Peer {
	t.Helper()
	if err := checkLoopback(o.Addr); err != nil {
		t.Fatalf("%s: Options.Addr: %v", kind, err)
	}
	if err := checkDomain(o.Domain); err != nil {
		t.Fatalf("%s: Options.Domain: %v", kind, err)
	}
	for _, u := range o.Users {
		if err := checkLocal(u); err != nil {
			t.Fatalf("%s: Options.Users: %v", kind, err)
		}
	}
	if o.NoDialback && o.CA == nil {
		t.Fatalf("%s: Options.NoDialback needs Options.CA: without certificates s2s cannot authenticate", kind)
	}
	if o.C2SPort == 0 {
		o.C2SPort = 5222
	}
	if o.S2SPort == 0 {
		o.S2SPort = 5269
	}
	if o.Hosts == nil {
		o.Hosts = NewHosts(t)
	}
	o.Hosts.Add(o.Domain, o.Addr)
	for _, port := range []int{o.C2SPort, o.S2SPort} {
		l, err := net.Listen("tcp", net.JoinHostPort(o.Addr, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("%s: %s:%d is not free: %v", kind, o.Addr, port, err)
		}
		l.Close()
	}
	p := &Peer{
		Kind: kind, Domain: o.Domain, Addr: o.Addr, C2SPort: o.C2SPort, S2SPort: o.S2SPort,
		Dir: filepath.Join(t.TempDir(), kind), t: t, hosts: o.Hosts,
	}
	p.consolePath = filepath.Join(p.Dir, "console.log")
	certDir := filepath.Join(p.Dir, "certs")
	if o.CA != nil {
		p.CertPath, p.KeyPath = o.CA.Issue(t, certDir, o.Domain)
	} else {
		p.CertPath, p.KeyPath = SelfSigned(t, certDir, o.Domain)
	}
	return p
}

// launch starts argv in its own process group with stdout and stderr going
// to the console file, and arranges for Stop at cleanup.
func (p *Peer) launch(dir string, env []string, argv ...string) {
	p.t.Helper()
	console, err := os.Create(p.consolePath)
	if err != nil {
		p.t.Fatalf("%s: %v", p.Kind, err)
	}
	defer console.Close() // the child holds its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.Kind, err)
	}
	p.cmd, p.pid, p.exited = cmd, cmd.Process.Pid, make(chan struct{})
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	p.t.Cleanup(func() {
		p.Stop()
		if p.t.Failed() {
			p.t.Logf("%s log:\n%s\n--- console ---\n%s", p, tail(p.Log(), 12000), tail(p.Console(), 4000))
		}
	})
}

// waitReady polls until both ports listen and ready (if not nil) reports
// true. It fails the test if the process exits, ready
// returns an error, or startTimeout passes.
func (p *Peer) waitReady(ready func() (bool, error)) {
	p.t.Helper()
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	ports := []int{p.C2SPort, p.S2SPort}
	for {
		for len(ports) > 0 && listening(p.Addr, ports[0]) {
			ports = ports[1:]
		}
		ok := len(ports) == 0
		if ok && ready != nil {
			var err error
			if ok, err = ready(); err != nil {
				p.fatalStart(err)
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.fatalStart(fmt.Errorf("not ready after %v (ports still closed: %v)", startTimeout, ports))
		}
		select {
		case <-p.exited:
			p.fatalStart(fmt.Errorf("exited during start: %v", p.waitErr))
		case <-tick.C:
		}
	}
}

func (p *Peer) fatalStart(err error) {
	p.t.Helper()
	select {
	case <-p.exited:
		p.stopOnce.Do(func() {}) // nothing left to stop, nothing more to report
	default:
		p.Stop()
	}
	p.t.Fatalf("%s: %v\n--- log ---\n%s\n--- console ---\n%s", p, err, tail(p.Log(), 8000), tail(p.Console(), 4000))
}

// listening reports whether a TCP socket listens on addr:port. It reads
// /proc/net/tcp, so that probing leaves no trace in the server's log (a
// connection closed before its stream opens is logged as a failed s2s
// connection); where that file cannot be read it connects instead.
func listening(addr string, port int) bool {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(port)), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	want := netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(port))
	for _, l := range procNetTCP(b) {
		if l == want {
			return true
		}
	}
	return false
}

// procNetTCP returns the local addresses of the listening sockets in the
// text of /proc/net/tcp.
func procNetTCP(b []byte) []netip.AddrPort {
	var out []netip.AddrPort
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" { // TCP_LISTEN
			continue
		}
		ipHex, portHex, ok := strings.Cut(f[1], ":")
		ip, err1 := strconv.ParseUint(ipHex, 16, 32)
		port, err2 := strconv.ParseUint(portHex, 16, 16)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		// The kernel prints the address as a number in host byte order.
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(ip))
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4(a), uint16(port)))
	}
	return out
}

// baseEnv is the environment of every peer process: the caller's, minus
// anything that would point a server at the caller's files.
func baseEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", strings.HasPrefix(k, "ERL_"), strings.HasPrefix(k, "EJABBERD"),
			strings.HasPrefix(k, "LUA_"), strings.HasPrefix(k, "PROSODY"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

// skipOrFail skips the test because a program it needs is missing, or
// fails it when CASP3R_REQUIRE_INTEROP=1.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CASP3R_REQUIRE_INTEROP") == "1" {
		t.Fatalf("interop peer required (CASP3R_REQUIRE_INTEROP=1) but unavailable: %s", msg)
	}
	t.Skipf("skipped, interop peer unavailable: %s (set CASP3R_REQUIRE_INTEROP=1 to fail instead)", msg)
}

// lookPath finds an executable or skips/fails the test.
func lookPath(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "%s not found (Debian: apt-get install %s)", name, pkg)
	}
	return p
}

// run runs argv to completion within cmdTimeout and returns its combined
// output.
func run(dir string, env []string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.WaitDelay = 2 * time.Second
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(cmdTimeout, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		err = errors.Join(fmt.Errorf("timed out after %v", cmdTimeout), err)
	}
	return out.String(), err
}

// checkLocal accepts the account names the harness can put into config and
// code unescaped.
func checkLocal(u string) error {
	if u == "" || len(u) > 64 {
		return fmt.Errorf("user %q: want 1 to 64 characters", u)
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("user %q: want only a-z, 0-9, '-', '_', '.'", u)
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
