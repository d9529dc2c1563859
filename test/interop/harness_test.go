//go:build integration

// Package interop runs the casp3r binary against XMPP clients nobody here
// wrote: slixmpp, go-sendxmpp, @xmpp/client (xmpp.js), and a small raw client.
//
// Each test starts private servers with `casp3r init` and `casp3r serve` on a
// loopback address of its own (127.0.0.x, ports from the generated config),
// in t.TempDir(). Run it with
//
//	go test -tags integration -count=1 ./test/...
//
// A test whose external client is missing is skipped, unless
// CASP3R_REQUIRE_INTEROP=1, which turns the skip into a failure (CI sets it).
// CASP3R_BIN runs the tests against a prebuilt binary instead of building
// ./cmd/casp3r; CASP3R_PYTHON names a python3 that can import slixmpp.
package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

const (
	// readyTimeout bounds how long a native server may take to open its port.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds how long a native server may take to exit on SIGTERM.
	stopTimeout = 15 * time.Second
	// cmdTimeout bounds every short command (init, user add, client one-shots).
	cmdTimeout = 60 * time.Second
)

// env is what TestMain prepares for every test.
type env struct {
	bin     string // the casp3r binary under test
	modRoot string // directory holding go.mod
	tmp     string // removed after the run
}

var (
	testEnv env
	// nextHost hands out 127.0.0.x addresses, one per server.
	nextHost atomic.Int32
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "casp3r-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	testEnv.tmp = tmp
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		fmt.Fprintf(os.Stderr, "interop: find go.mod: %v\n", err)
		return 1
	}
	testEnv.modRoot = filepath.Dir(strings.TrimSpace(string(out)))
	// Different runs of the tier on one machine start at different addresses.
	nextHost.Store(int32(10 + os.Getpid()%100))

	if bin := os.Getenv("CASP3R_BIN"); bin != "" {
		testEnv.bin = bin
	} else {
		testEnv.bin = filepath.Join(tmp, "casp3r")
		if err := goBuild(testEnv.bin, nil); err != nil {
			fmt.Fprintln(os.Stderr, "interop:", err)
			return 1
		}
	}
	return m.Run()
}

// goBuild builds ./cmd/casp3r into out with CGO_ENABLED=0, the cluster
// build tag (the tier runs clustered nodes too) and the extra environment
// (GOOS, GOARCH, GOARM) given.
func goBuild(out string, extraEnv []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "cluster", "-o", out, "./cmd/casp3r")
	cmd.Dir = testEnv.modRoot
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), extraEnv...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(extraEnv, " "), err, b)
	}
	return nil
}

// skipOrFail skips the test because a tool it needs is missing, or fails it
// when CASP3R_REQUIRE_INTEROP=1.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CASP3R_REQUIRE_INTEROP") == "1" {
		t.Fatalf("interop tool required (CASP3R_REQUIRE_INTEROP=1) but unavailable: %s", msg)
	}
	t.Skipf("skipped, interop tool unavailable: %s (set CASP3R_REQUIRE_INTEROP=1 to fail instead)", msg)
}

// lookTool returns the path of an executable or skips/fails the test.
func lookTool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "%s not found in PATH (%s)", name, hint)
	}
	return p
}

// result is the outcome of a finished command.
type result struct {
	stdout, stderr string
	code           int // exit code; -1 if it did not exit normally
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("exit %d (%v)\nstdout:\n%s\nstderr:\n%s", r.code, r.err, r.stdout, r.stderr)
}

// runCmd runs argv to completion with a timeout, stdin and extra environment.
func runCmd(timeout time.Duration, stdin string, extraEnv []string, argv ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: -1, err: err}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	return r
}

// allocHost returns a 127.0.0.x address on which none of ports is in use.
func allocHost(t testing.TB, ports ...int) string {
	t.Helper()
	for range 250 {
		n := nextHost.Add(1)
		host := fmt.Sprintf("127.0.0.%d", 2+(n-2)%250)
		if portsFree(host, ports...) {
			return host
		}
	}
	t.Fatalf("no free 127.0.0.x address for ports %v", ports)
	return ""
}

func portsFree(host string, ports ...int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(p)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// waitPort polls until host:port accepts TCP connections. It gives up at the
// deadline or as soon as exited is closed (the server died).
func waitPort(host string, port int, timeout time.Duration, exited <-chan struct{}) error {
	addr := net.JoinHostPort(host, fmt.Sprint(port))
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %v: %w", addr, timeout, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("server exited before %s accepted connections", addr)
		case <-tick.C:
		}
	}
}

// serverOptions changes how newServer sets up a server.
type serverOptions struct {
	bin          string   // binary; default: the one TestMain built
	wrap         []string // run the binary through this (an emulator)
	registration string   // set the top-level `registration` key ("open")
	slow         bool     // emulated: allow much longer start and stop
	host         string   // listen on this 127.0.0.x instead of allocating one
	// initArgs are extra `casp3r init` flags (--cluster-name, --join, ...).
	// With --join, --domain is not passed: a joining node takes it from
	// the token.
	initArgs []string
}

// server is one casp3r data folder and, while running, its serve process.
type server struct {
	t      testing.TB
	opts   serverOptions
	host   string // loopback address it listens on
	domain string
	dir    string // data folder
	c2s    int    // STARTTLS port
	tls    int    // direct TLS port
	https  int    // HTTPS and WebSocket port
	route  string // [cluster] listen (host:port of cluster routes); "" when not clustered

	initOut string // what `casp3r init` printed on stdout

	runs    int // serve processes started so far
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when cmd has been reaped
	waitErr error
}

// newServer runs `casp3r init` in a fresh data folder and reads the ports
// from the generated config. The server is not started; see start.
func newServer(t testing.TB, opts serverOptions) *server {
	t.Helper()
	if opts.bin == "" {
		opts.bin = testEnv.bin
	}
	s := &server{
		t:      t,
		opts:   opts,
		host:   opts.host,
		domain: "interop.test",
		dir:    filepath.Join(t.TempDir(), "data"),
	}
	if s.host == "" {
		s.host = allocHost(t, 5222, 5223, 5443)
	}
	args := []string{"init", "--data", s.dir, "--listen", s.host}
	if !slices.Contains(opts.initArgs, "--join") {
		args = append(args, "--domain", s.domain)
	}
	r := s.cli(cmdTimeout*s.slowFactor(), append(args, opts.initArgs...)...)
	if r.code != 0 {
		t.Fatalf("casp3r init %s: %v", strings.Join(opts.initArgs, " "), r)
	}
	s.initOut = r.stdout
	cfgPath := filepath.Join(s.dir, "casp3r.toml")
	if opts.registration != "" {
		setTopLevelKey(t, cfgPath, "registration", opts.registration)
	}
	var cfg struct {
		Domain string `toml:"domain"`
		C2S    struct {
			Port          int `toml:"port"`
			DirectTLSPort int `toml:"direct_tls_port"`
		} `toml:"c2s"`
		HTTPS struct {
			Port int `toml:"port"`
		} `toml:"https"`
		Cluster struct {
			Listen string `toml:"listen"`
		} `toml:"cluster"`
	}
	if _, err := toml.DecodeFile(cfgPath, &cfg); err != nil {
		t.Fatalf("read config written by casp3r init: %v", err)
	}
	s.c2s, s.tls, s.https = cfg.C2S.Port, cfg.C2S.DirectTLSPort, cfg.HTTPS.Port
	s.domain, s.route = cfg.Domain, cfg.Cluster.Listen
	if s.c2s == 0 || s.tls == 0 || s.https == 0 {
		t.Fatalf("config %s lacks [c2s] port / direct_tls_port or [https] port (got %d, %d, %d)",
			cfgPath, s.c2s, s.tls, s.https)
	}
	t.Cleanup(s.cleanup)
	return s
}

// setTopLevelKey rewrites `key = ...` (outside any table) in a TOML file.
func setTopLevelKey(t testing.TB, path, key, value string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s*=.*$`)
	loc := re.FindIndex(b)
	if loc == nil || bytes.Contains(b[:loc[0]], []byte("\n[")) || bytes.HasPrefix(b, []byte("[")) {
		t.Fatalf("%s has no top-level %q key to set", path, key)
	}
	out := append(append(append([]byte{}, b[:loc[0]]...), fmt.Sprintf("%s = %q", key, value)...), b[loc[1]:]...)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (s *server) slowFactor() time.Duration {
	if s.opts.slow {
		return 4
	}
	return 1
}

// argv is the command line that runs the casp3r binary with args.
func (s *server) argv(args ...string) []string {
	return append(append(append([]string{}, s.opts.wrap...), s.opts.bin), args...)
}

// cli runs a short casp3r subcommand.
func (s *server) cli(timeout time.Duration, args ...string) result {
	return runCmd(timeout, "", nil, s.argv(args...)...)
}

// jid returns local@domain.
func (s *server) jid(local string) string { return local + "@" + s.domain }

// addUser creates an account with `casp3r user add` and returns its JID.
func (s *server) addUser(local, password string) string {
	s.t.Helper()
	jid := s.jid(local)
	r := s.cli(cmdTimeout*s.slowFactor(), "user", "add", "--data", s.dir, "--password", password, jid)
	if r.code != 0 {
		s.t.Fatalf("casp3r user add %s: %v", jid, r)
	}
	return jid
}

// start runs `casp3r serve` and waits until the c2s port accepts connections.
func (s *server) start() {
	s.t.Helper()
	s.launch()
	if err := waitPort(s.host, s.c2s, readyTimeout*s.slowFactor(), s.exited); err != nil {
		s.t.Fatalf("casp3r serve (run %d) not ready: %v\n%s", s.runs, err, s.logTail())
	}
}

// launch runs `casp3r serve` without waiting for it to be ready.
func (s *server) launch() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("server already running")
	}
	s.runs++
	s.logPath = filepath.Join(filepath.Dir(s.dir), fmt.Sprintf("serve-%d.log", s.runs))
	logf, err := os.Create(s.logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	argv := s.argv("serve", "--data", s.dir)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("start casp3r serve: %v", err)
	}
	logf.Close() // the child holds its own descriptor
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		s.waitErr = cmd.Wait()
		close(exited)
	}(s.exited)
}

// waitPort waits until another of the server's ports accepts connections.
func (s *server) waitPort(port int) {
	s.t.Helper()
	if err := waitPort(s.host, port, readyTimeout*s.slowFactor(), s.exited); err != nil {
		s.t.Fatalf("casp3r serve: %v\n%s", err, s.logTail())
	}
}

// stop sends SIGTERM and checks that the server exits 0 in time and logged
// no panic.
func (s *server) stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	select {
	case <-exited:
		s.t.Errorf("casp3r serve had already exited (%v) before SIGTERM\n%s", s.waitErr, s.logTail())
		return
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Errorf("SIGTERM casp3r serve: %v", err)
	}
	timeout := stopTimeout * s.slowFactor()
	select {
	case <-exited:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-exited
		s.t.Errorf("casp3r serve did not exit within %v of SIGTERM\n%s", timeout, s.logTail())
		return
	}
	if s.waitErr != nil {
		s.t.Errorf("casp3r serve exited with %v after SIGTERM, want exit status 0\n%s", s.waitErr, s.logTail())
	}
	s.checkLog()
}

// kill ends the server with SIGKILL, as a power cut would.
func (s *server) kill() {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatal("server not running")
	}
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	if err := cmd.Process.Kill(); err != nil {
		s.t.Fatalf("SIGKILL casp3r serve: %v", err)
	}
	<-exited
	s.checkLog()
}

// panicRE matches what the Go runtime prints when a program crashes.
var panicRE = regexp.MustCompile(`(?m)^(panic: |fatal error: |WARNING: DATA RACE)`)

func (s *server) checkLog() {
	s.t.Helper()
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		s.t.Errorf("read server log: %v", err)
		return
	}
	if loc := panicRE.FindIndex(b); loc != nil {
		s.t.Errorf("server log %s shows a crash:\n%s", filepath.Base(s.logPath), tail(b[loc[0]:], 8000))
	}
}

func (s *server) cleanup() {
	s.stop()
	if s.t.Failed() && s.logPath != "" {
		s.t.Logf("server log (run %d, %s):\n%s", s.runs, s.host, s.logTail())
	}
}

func (s *server) logTail() string {
	if s.logPath == "" {
		return "(no server log)"
	}
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(read server log: %v)", err)
	}
	return "--- server log " + filepath.Base(s.logPath) + " ---\n" + tail(b, 6000)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		return "..." + string(b[len(b)-n:])
	}
	return string(b)
}

// pythonForSlixmpp finds an interpreter that can import slixmpp: the
// system one usually (a pyenv python3 earlier in PATH cannot).
var pythonForSlixmpp = sync.OnceValues(func() (string, error) {
	var cands []string
	if p := os.Getenv("CASP3R_PYTHON"); p != "" {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/bin/python3")
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	var errs []error
	for _, p := range cands {
		r := runCmd(30*time.Second, "", nil, p, "-c", "import slixmpp")
		if r.code == 0 {
			return p, nil
		}
		errs = append(errs, fmt.Errorf("%s: %v %s", p, r.err, strings.TrimSpace(r.stderr)))
	}
	return "", fmt.Errorf("no python3 can import slixmpp (Debian: apt-get install python3-slixmpp): %w", errors.Join(errs...))
})

func needPython(t testing.TB) string {
	t.Helper()
	p, err := pythonForSlixmpp()
	if err != nil {
		skipOrFail(t, "%v", err)
	}
	return p
}
