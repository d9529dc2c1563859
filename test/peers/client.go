//go:build integration

package peers

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// clientWait bounds each Client.Wait.
	clientWait = 30 * time.Second
	// clientMaxTime is how long the script runs at most (--max-time).
	clientMaxTime = 120
)

// Event is one JSON line printed by the slixmpp client script, e.g.
// {"event": "message", "from": "a@b/r", "body": "hi", ...}.
type Event map[string]any

// Str returns a string field, or "".
func (e Event) Str(key string) string {
	s, _ := e[key].(string)
	return s
}

func (e Event) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// Client is a running slixmpp client: the interop tier's script
// test/interop/testdata/slixclient.py, which logs in with STARTTLS (no
// certificate checks), fetches the roster, sends presence, prints an Event
// per line and takes JSON commands on stdin. See the script for both.
type Client struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser

	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every new event and at exit
	exited  bool
	waitErr error
	stderr  strings.Builder
}

// SlixScript is the path of the slixmpp client script.
func SlixScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "interop", "testdata", "slixclient.py")
}

// Connect logs in as local@p.Domain (password Password) on p's c2s port.
// extra are more script flags, e.g. "--mech", "SCRAM-SHA-1".
func (p *Peer) Connect(t testing.TB, local string, extra ...string) *Client {
	t.Helper()
	args := append([]string{"--jid", p.JID(local), "--password", Password,
		"--host", p.Addr, "--port", strconv.Itoa(p.C2SPort)}, extra...)
	return Slix(t, args...)
}

// Slix runs the slixmpp client script with args (see its --help) and
// collects its events. It is killed at cleanup if still running. The test
// is skipped if no python3 can import slixmpp (fails if
// CASP3R_REQUIRE_INTEROP=1); CASP3R_PYTHON names the interpreter to use.
func Slix(t testing.TB, args ...string) *Client {
	t.Helper()
	py := slixPython(t)
	argv := append([]string{SlixScript(), "--max-time", strconv.Itoa(clientMaxTime)}, args...)
	c := &Client{t: t, name: "slixmpp " + strings.Join(args, " "), changed: make(chan struct{})}
	c.cmd = exec.Command(py, argv...)
	c.cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.stderr}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", c.name, err)
	}
	done := make(chan struct{})
	go c.read(out, done)
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s", c.Transcript())
		}
	})
	return c
}

func (c *Client) read(out io.Reader, done chan<- struct{}) {
	defer close(done)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		e := Event{}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			e = Event{"event": "raw", "line": sc.Text()}
		}
		c.mu.Lock()
		c.events = append(c.events, e)
		c.notifyLocked()
		c.mu.Unlock()
	}
	err := c.cmd.Wait()
	c.mu.Lock()
	c.exited, c.waitErr = true, err
	c.notifyLocked()
	c.mu.Unlock()
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Send writes one command, e.g. {"cmd": "send", "to": jid, "body": "hi"}.
func (c *Client) Send(cmd map[string]string) {
	c.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("%s: send %s: %v\n%s", c.name, b, err, c.Transcript())
	}
}

// Message sends a chat message.
func (c *Client) Message(to, body string) {
	c.t.Helper()
	c.Send(map[string]string{"cmd": "send", "to": to, "body": body})
}

// Subscribe asks for to's presence.
func (c *Client) Subscribe(to string) {
	c.t.Helper()
	c.Send(map[string]string{"cmd": "subscribe", "to": to})
}

// Quit closes the stream and waits for the script to exit 0.
func (c *Client) Quit() {
	c.t.Helper()
	c.Send(map[string]string{"cmd": "quit"})
	deadline := time.After(clientWait)
	for {
		c.mu.Lock()
		exited, err, ch := c.exited, c.waitErr, c.changed
		c.mu.Unlock()
		if exited {
			if err != nil {
				c.t.Errorf("%s: exit: %v\n%s", c.name, err, c.Transcript())
			}
			return
		}
		select {
		case <-ch:
		case <-deadline:
			c.t.Fatalf("%s did not exit within %v of quit\n%s", c.name, clientWait, c.Transcript())
		}
	}
}

// Wait returns the first event, among all the client printed so far or
// prints within clientWait, for which match is true. what describes it
// for the failure message.
func (c *Client) Wait(what string, match func(Event) bool) Event {
	c.t.Helper()
	e, err := c.wait(match)
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %v\n%s", c.name, what, err, c.Transcript())
	}
	return e
}

// WaitEvent waits for an event of kind whose string fields equal want.
func (c *Client) WaitEvent(kind string, want map[string]string) Event {
	c.t.Helper()
	return c.Wait(fmt.Sprintf("%q event with %v", kind, want), func(e Event) bool {
		if e.Str("event") != kind {
			return false
		}
		for k, v := range want {
			if e.Str(k) != v {
				return false
			}
		}
		return true
	})
}

func (c *Client) wait(match func(Event) bool) (Event, error) {
	deadline := time.After(clientWait)
	next := 0
	for {
		c.mu.Lock()
		events, exited, ch := c.events[next:], c.exited, c.changed
		next = len(c.events)
		c.mu.Unlock()
		for _, e := range events {
			if match(e) {
				return e, nil
			}
		}
		if exited {
			return nil, errors.New("the client exited")
		}
		select {
		case <-ch:
		case <-deadline:
			return nil, fmt.Errorf("not seen within %v", clientWait)
		}
	}
}

// Transcript is everything the client printed, for failure messages.
func (c *Client) Transcript() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s: events ---\n", c.name)
	for _, e := range c.events {
		fmt.Fprintf(&b, "%v\n", e)
	}
	if c.exited {
		fmt.Fprintf(&b, "(exited: %v)\n", c.waitErr)
	}
	if c.stderr.Len() > 0 {
		fmt.Fprintf(&b, "--- stderr ---\n%s", tail(c.stderr.String(), 4000))
	}
	return b.String()
}

// slixPython finds an interpreter that can import slixmpp: usually the
// system one (Debian's python3-slixmpp), which a python3 earlier in PATH
// (pyenv, venv) may not be.
func slixPython(t testing.TB) string {
	t.Helper()
	var cands []string
	if p := os.Getenv("CASP3R_PYTHON"); p != "" {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/bin/python3")
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	var errs []error
	for _, py := range cands {
		// find_spec, not import: importing slixmpp takes 0.3 s.
		out, err := run("", nil, py, "-c",
			"import importlib.util, sys; sys.exit(importlib.util.find_spec('slixmpp') is None)")
		if err == nil {
			return py
		}
		errs = append(errs, fmt.Errorf("%s: %v %s", py, err, strings.TrimSpace(out)))
	}
	skipOrFail(t, "no python3 can import slixmpp (Debian: apt-get install python3-slixmpp): %v", errors.Join(errs...))
	return ""
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
