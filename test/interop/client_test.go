//go:build integration

package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// clientWait bounds each wait for something a client should see.
	clientWait = 30 * time.Second
	// clientMaxTime is passed to the scripts, which exit on their own after it.
	clientMaxTime = 120
)

// event is one JSON line printed by a client script.
type event map[string]any

func (e event) str(key string) string {
	s, _ := e[key].(string)
	return s
}

func (e event) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// bare strips the resource from a JID.
func bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// clientProc is a running client script that prints JSON events on stdout
// and takes JSON commands on stdin (testdata/slixclient.py,
// node/wsclient.mjs).
type clientProc struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu      sync.Mutex
	events  []event
	changed chan struct{} // closed and replaced whenever events or done change
	done    bool          // the process has exited
	waitErr error
	stderr  bytes.Buffer
}

// startClient runs argv and collects its events. The process is killed at
// cleanup if it is still running.
func startClient(t testing.TB, name string, extraEnv []string, argv ...string) *clientProc {
	t.Helper()
	c := &clientProc{t: t, name: name, changed: make(chan struct{})}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Env = append(os.Environ(), extraEnv...)
	c.cmd.Stderr = lockedWriter{&c.mu, &c.stderr}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ev := event{}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = event{"event": "raw", "line": sc.Text()}
			}
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.notifyLocked()
			c.mu.Unlock()
		}
		err := c.cmd.Wait()
		c.mu.Lock()
		c.done, c.waitErr = true, err
		c.notifyLocked()
		c.mu.Unlock()
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-reaped
		if t.Failed() {
			t.Logf("%s", c.transcript())
		}
	})
	return c
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (c *clientProc) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// transcript is everything the client printed, for failure messages.
func (c *clientProc) transcript() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s events ---\n", c.name)
	for _, e := range c.events {
		fmt.Fprintf(&b, "%v\n", e)
	}
	if c.done {
		fmt.Fprintf(&b, "(exited: %v)\n", c.waitErr)
	}
	fmt.Fprintf(&b, "--- %s stderr ---\n%s", c.name, tail(c.stderr.Bytes(), 4000))
	return b.String()
}

// waitFor returns the first event (seen so far or arriving within clientWait)
// that pred accepts; it fails the test if none does.
func (c *clientProc) waitFor(what string, pred func(event) bool) event {
	c.t.Helper()
	timer := time.NewTimer(clientWait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		for _, e := range c.events {
			if pred(e) {
				c.mu.Unlock()
				return e
			}
		}
		done, changed := c.done, c.changed
		c.mu.Unlock()
		if done {
			c.t.Fatalf("%s exited before it saw %s\n%s", c.name, what, c.transcript())
		}
		select {
		case <-changed:
		case <-timer.C:
			c.t.Fatalf("%s did not see %s within %v\n%s", c.name, what, clientWait, c.transcript())
		}
	}
}

// waitEvent waits for an event of the given kind whose fields equal want.
func (c *clientProc) waitEvent(kind string, want map[string]string) event {
	c.t.Helper()
	return c.waitFor(fmt.Sprintf("%s %v", kind, want), func(e event) bool {
		if e.str("event") != kind {
			return false
		}
		for k, v := range want {
			got := e.str(k)
			if k == "from" && !strings.Contains(v, "/") {
				got = bare(got) // want a bare JID: any resource matches
			}
			if got != v {
				return false
			}
		}
		return true
	})
}

// send writes one command line.
func (c *clientProc) send(cmd map[string]string) {
	c.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("%s: write command %s: %v\n%s", c.name, b, err, c.transcript())
	}
}

// ping asks the client to ping its server and waits for the answer. The server
// handles a stream's stanzas in order, so everything the client sent before
// has been processed when this returns.
func (c *clientProc) ping() {
	c.t.Helper()
	c.mu.Lock()
	tag := strconv.Itoa(len(c.events))
	c.mu.Unlock()
	c.send(map[string]string{"cmd": "ping", "tag": tag})
	c.waitEvent("pong", map[string]string{"tag": tag})
}

// quit asks the client to close its stream and checks that it exits 0.
func (c *clientProc) quit() {
	c.t.Helper()
	c.send(map[string]string{"cmd": "quit"})
	c.stdin.Close()
	c.waitExit(0)
}

// waitExit waits for the process to exit with the given code.
func (c *clientProc) waitExit(code int) {
	c.t.Helper()
	timer := time.NewTimer(clientWait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		done, changed, err := c.done, c.changed, c.waitErr
		c.mu.Unlock()
		if done {
			if got := c.cmd.ProcessState.ExitCode(); got != code {
				c.t.Fatalf("%s exited with %d (%v), want %d\n%s", c.name, got, err, code, c.transcript())
			}
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			c.t.Fatalf("%s did not exit within %v\n%s", c.name, clientWait, c.transcript())
		}
	}
}

// startSlix runs testdata/slixclient.py for local@domain on the server's
// STARTTLS port; extra is passed through (e.g. "--register", "--mech", M).
func startSlix(t testing.TB, s *server, local, password string, extra ...string) *clientProc {
	t.Helper()
	py := needPython(t)
	argv := []string{py, filepath.Join("testdata", "slixclient.py"),
		"--jid", s.jid(local), "--password", password,
		"--host", s.host, "--port", strconv.Itoa(s.c2s),
		"--max-time", strconv.Itoa(clientMaxTime)}
	return startClient(t, "slixmpp "+local, nil, append(argv, extra...)...)
}

// nodeArgv returns the node command line prefix that has a global WebSocket,
// or skips/fails the test.
func nodeArgv(t testing.TB) []string {
	t.Helper()
	node := lookTool(t, "node", "install Node.js 20.10 or newer")
	if _, err := os.Stat(filepath.Join("node", "node_modules", "@xmpp", "client", "package.json")); err != nil {
		skipOrFail(t, "@xmpp/client is not installed: run `npm ci` in test/interop/node (%v)", err)
	}
	const probe = `process.exit(typeof WebSocket === "function" ? 0 : 1)`
	for _, argv := range [][]string{{node}, {node, "--experimental-websocket"}} {
		if r := runCmd(cmdTimeout, "", nil, append(argv, "-e", probe)...); r.code == 0 {
			return argv
		}
	}
	r := runCmd(cmdTimeout, "", nil, node, "--version")
	skipOrFail(t, "node %s has no WebSocket client (@xmpp/client 0.14 needs Node >= 20.10)", strings.TrimSpace(r.stdout))
	return nil
}

// startNode runs node/wsclient.mjs for local@domain over WebSocket.
func startNode(t testing.TB, s *server, local, password string) *clientProc {
	t.Helper()
	argv := append(nodeArgv(t), filepath.Join("node", "wsclient.mjs"),
		"--service", fmt.Sprintf("wss://%s:%d/xmpp-websocket", s.host, s.https),
		"--domain", s.domain, "--user", local, "--password", password,
		"--max-time", strconv.Itoa(clientMaxTime))
	// The test server's certificate is self-signed.
	return startClient(t, "xmpp.js "+local, []string{"NODE_TLS_REJECT_UNAUTHORIZED=0"}, argv...)
}
