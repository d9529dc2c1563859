// Command load puts one XMPP server on this machine under load: many
// clients log in over STARTTLS (RFC 6120, optionally registering in-band
// with XEP-0077 first), then stay idle or exchange chat messages, and one
// summary is printed: logins per second, message throughput and one-way
// latency, and the server's memory (VmRSS) before and with all clients.
//
//	go run ./bench/load -h
//
// Accounts are prefix1..prefixN with one password. Make them with
// -register (the server needs registration = "open"), or beforehand with
// a loop of "casp3r user add". Only loopback addresses are accepted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"casp3r/internal/xmlstream"

	"github.com/xdg-go/scram"
)

type options struct {
	addr        string
	dialAddrs   []string // client i dials dialAddrs[i % len]
	domain      string
	users       int
	prefix      string
	password    string
	mech        string
	concurrency int
	scenario    string
	messages    int
	rate        float64
	hold        time.Duration
	settle      time.Duration
	pid         int
	json        bool
	timeout     time.Duration
	register    bool
	presence    bool
	x25519      bool
	warm        bool
}

func main() {
	code, err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
	}
	os.Exit(code)
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5222", "c2s address of the server (STARTTLS port); loopback only; a comma-separated list spreads the clients over the nodes of a cluster in turn")
	fs.StringVar(&o.domain, "domain", "localhost", "XMPP domain of the server")
	fs.IntVar(&o.users, "users", 100, "number of clients, one per account prefix1..prefixN")
	fs.StringVar(&o.prefix, "prefix", "load", "account name prefix")
	fs.StringVar(&o.password, "password", "load-password", "password of every account")
	fs.StringVar(&o.mech, "mech", "SCRAM-SHA-1", "SASL mechanism: SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN")
	fs.IntVar(&o.concurrency, "concurrency", 20, "logins in flight at once")
	fs.StringVar(&o.scenario, "scenario", "login", "login (log in all, then leave), idle (log in all, hold -hold), chat (each user sends -messages to the next)")
	fs.IntVar(&o.messages, "messages", 10, "chat: messages each user sends")
	fs.Float64Var(&o.rate, "rate", 0, "chat: offered messages/s over all senders; 0 = saturation, one message in flight per sender")
	fs.DurationVar(&o.hold, "hold", 10*time.Second, "idle: how long to keep the clients connected")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "with -pid: wait before each memory reading after logins or closes")
	fs.IntVar(&o.pid, "pid", 0, "server process id: report its VmRSS from /proc/PID/status")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.BoolVar(&o.register, "register", false, "register each account in-band (XEP-0077) before logging in; existing accounts are fine")
	fs.BoolVar(&o.presence, "presence", true, "send initial presence after binding (needed for chat)")
	fs.BoolVar(&o.warm, "warm", false, "log every user in and out once, untimed, before the run, and keep each user's SCRAM keys for the timed logins (as clients that store the salted password do): the timed logins then cost the tool no PBKDF2; the idle memory reading comes after")
	fs.BoolVar(&o.x25519, "x25519", false, "offer only X25519 key exchange in TLS, not Go's default post-quantum hybrid (to measure what it costs)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: go run ./bench/load [flags]

Loads one XMPP server on this machine and prints a summary. The exit status
is 1 when a login failed, a message was lost or a connection dropped.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, a := range strings.Split(o.addr, ",") {
		d, err := loopbackAddr(strings.TrimSpace(a))
		if err != nil {
			return nil, err
		}
		o.dialAddrs = append(o.dialAddrs, d)
	}
	switch {
	case o.users < 1 || o.users > 100000:
		return nil, fmt.Errorf("-users %d: want 1..100000", o.users)
	case o.concurrency < 1:
		return nil, fmt.Errorf("-concurrency %d: want at least 1", o.concurrency)
	case o.messages < 0 || o.messages > 1000000:
		return nil, fmt.Errorf("-messages %d: want 0..1000000", o.messages)
	case o.rate < 0:
		return nil, fmt.Errorf("-rate %g: want ≥ 0", o.rate)
	case o.timeout <= 0:
		return nil, fmt.Errorf("-timeout must be positive")
	case o.password == "":
		return nil, fmt.Errorf("-password must not be empty")
	}
	switch o.mech {
	case "SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN":
	default:
		return nil, fmt.Errorf("-mech %q: want SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN", o.mech)
	}
	switch o.scenario {
	case "login", "idle":
	case "chat":
		if !o.presence {
			return nil, fmt.Errorf("-scenario chat needs -presence (messages to a bare JID go to available resources)")
		}
	default:
		return nil, fmt.Errorf("-scenario %q: want login, idle or chat", o.scenario)
	}
	return o, nil
}

// summary is what one run prints.
type summary struct {
	Scenario    string  `json:"scenario"`
	Users       int     `json:"users"`
	Mech        string  `json:"mech"`
	Concurrency int     `json:"concurrency"`
	FileLimit   uint64  `json:"file_limit"`
	Registered  int     `json:"registered"`
	Logins      int     `json:"logins"`
	LoginFailed int     `json:"login_failures"`
	LoginSecs   float64 `json:"login_seconds"`
	LoginsPerS  float64 `json:"logins_per_second"`
	LoginLat    latency `json:"login_latency"`
	LoginCPUms  float64 `json:"server_cpu_ms_per_login,omitempty"`
	Dropped     int64   `json:"connections_dropped"`

	Sent      int64   `json:"messages_sent,omitempty"`
	Received  int64   `json:"messages_received,omitempty"`
	Lost      int64   `json:"messages_lost,omitempty"`
	Bounced   int64   `json:"messages_bounced,omitempty"`
	Timeouts  int64   `json:"ack_timeouts,omitempty"`
	ChatSecs  float64 `json:"chat_seconds,omitempty"`
	MsgsPerS  float64 `json:"messages_per_second,omitempty"`
	OneWayLat latency `json:"latency"`
	MsgCPUus  float64 `json:"server_cpu_us_per_message,omitempty"`

	RSSIdleKB       int64   `json:"rss_idle_kb,omitempty"`
	RSSConnectedKB  int64   `json:"rss_connected_kb,omitempty"`
	RSSAfterKB      int64   `json:"rss_after_close_kb,omitempty"`
	RSSPeakKB       int64   `json:"rss_peak_kb,omitempty"`
	RSSPerClientKB  float64 `json:"rss_per_client_kb,omitempty"`
	AnonIdleKB      int64   `json:"rss_anon_idle_kb,omitempty"`
	AnonConnectedKB int64   `json:"rss_anon_connected_kb,omitempty"`
	AnonPerClientKB float64 `json:"rss_anon_per_client_kb,omitempty"`

	Errors []string `json:"errors,omitempty"`
}

// load is the state of one run.
type load struct {
	o       *options
	ctx     context.Context
	t0      time.Time // base of the timestamps in message bodies
	clients []*client // by user index; nil where the login failed
	readers sync.WaitGroup
	closing atomic.Bool
	closed  sync.Once
	dropped atomic.Int64
	errs    errorTally
	chat    *chat           // nil unless -scenario chat
	keys    []*scram.Client // by user index, with -warm: each user's SCRAM keys
}

func run(args []string, stdout, stderr io.Writer) (int, error) {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	}
	if err != nil {
		return 2, err
	}
	s := &summary{Scenario: o.scenario, Users: o.users, Mech: o.mech, Concurrency: o.concurrency}
	if s.FileLimit, err = raiseFileLimit(); err != nil {
		return 2, err
	}
	if s.FileLimit < uint64(o.users)+64 {
		return 2, fmt.Errorf("file limit %d is too low for %d clients (raise the hard limit: ulimit -Hn)", s.FileLimit, o.users)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	l := &load{o: o, ctx: ctx, t0: time.Now(), clients: make([]*client, o.users)}
	if o.scenario == "chat" {
		l.chat = newChat(l)
	}
	mem := func() memory {
		if o.pid == 0 {
			return memory{}
		}
		m, err := readMemory(o.pid)
		if err != nil {
			l.errs.add(err)
		}
		return m
	}
	settle := func() {
		if o.pid != 0 {
			l.wait(o.settle)
		}
	}

	if o.warm {
		if err := l.warmUp(s); err != nil {
			return 2, err
		}
		settle()
	}
	idle := mem()
	s.RSSIdleKB, s.AnonIdleKB = idle.rss, idle.anon
	cpu0 := l.serverCPU()
	l.loginAll(s)
	if cpu := l.serverCPU() - cpu0; cpu > 0 && s.Logins > 0 {
		s.LoginCPUms = round3(cpu.Seconds() * 1e3 / float64(s.Logins))
	}
	settle()
	conn := mem()
	switch o.scenario {
	case "idle":
		l.wait(o.hold)
		if m := mem(); m.rss > 0 {
			conn = m // after the hold: what idle clients cost
		}
	case "chat":
		l.chat.run(s)
	}
	s.RSSConnectedKB, s.AnonConnectedKB = conn.rss, conn.anon
	l.closeAll()
	settle()
	m := mem()
	s.RSSAfterKB, s.RSSPeakKB = m.rss, m.hwm
	if s.Logins > 0 && conn.rss > 0 {
		s.RSSPerClientKB = round3(float64(conn.rss-idle.rss) / float64(s.Logins))
		s.AnonPerClientKB = round3(float64(conn.anon-idle.anon) / float64(s.Logins))
	}
	s.Dropped = l.dropped.Load()
	if ctx.Err() != nil {
		l.errs.add(fmt.Errorf("run cut short by -timeout %s", o.timeout))
	}
	s.Errors = l.errs.list()
	if err := s.print(stdout, o.json); err != nil {
		return 2, err
	}
	if s.LoginFailed > 0 || s.Lost > 0 || s.Dropped > 0 || ctx.Err() != nil {
		return 1, nil
	}
	return 0, nil
}

// serverCPU returns the CPU time (user + system) the server has used so
// far, or 0 without -pid.
func (l *load) serverCPU() time.Duration {
	if l.o.pid == 0 {
		return 0
	}
	d, err := processCPU(l.o.pid)
	if err != nil {
		l.errs.add(err)
	}
	return d
}

// wait sleeps for d or until the run's deadline.
func (l *load) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.ctx.Done():
	}
}

// sinceStart is the time since the run began, in ns, on the wall clock:
// the clock the kernel stamps arrivals with (stampConn), so that a send
// and an arrival are on one clock.
func (l *load) sinceStart() int64 { return time.Now().UnixNano() - l.t0.UnixNano() }

func (l *load) user(i int) string { return l.o.prefix + strconv.Itoa(i+1) }

// key returns user i's SCRAM client kept since the warm-up, or nil.
func (l *load) key(i int) *scram.Client {
	if l.keys == nil {
		return nil
	}
	return l.keys[i]
}

// warmUp logs every user in and out once, -concurrency at a time, keeping
// each user's SCRAM client. A failed login ends the run: the timed logins
// would not be like for like.
func (l *load) warmUp(s *summary) error {
	hash, ok := scramHash(l.o.mech)
	if !ok {
		return nil // PLAIN: nothing to keep
	}
	l.keys = make([]*scram.Client, l.o.users)
	for i := range l.keys {
		sc, err := hash.NewClient(l.user(i), l.o.password, "")
		if err != nil {
			return fmt.Errorf("warm-up: scram client: %w", err)
		}
		l.keys[i] = sc
	}
	var first atomic.Pointer[error]
	var registered atomic.Int64
	l.eachUser(func(i int) bool {
		c, created, err := login(l.ctx, l.o, l.o.dialAddrs[i%len(l.o.dialAddrs)], l.user(i), l.keys[i])
		if err != nil {
			err = fmt.Errorf("warm-up login of %s: %w", l.user(i), err)
			first.CompareAndSwap(nil, &err)
			return false
		}
		if created {
			registered.Add(1)
		}
		c.closeStream()
		_ = c.conn.Close()
		return true
	})
	s.Registered += int(registered.Load())
	if err := first.Load(); err != nil {
		return *err
	}
	return l.ctx.Err()
}

// eachUser runs fn for every user index, -concurrency at a time, until the
// run's deadline or fn reports false for one.
func (l *load) eachUser(fn func(i int) bool) {
	jobs := make(chan int)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range min(l.o.concurrency, l.o.users) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if !fn(i) {
					stop.Store(true)
				}
			}
		}()
	}
	for i := 0; i < l.o.users && l.ctx.Err() == nil && !stop.Load(); i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

// loginAll logs every user in, -concurrency at a time, and starts a reader
// for each connected client.
func (l *load) loginAll(s *summary) {
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	l.eachUser(func(i int) bool {
		t := time.Now()
		c, created, err := login(l.ctx, l.o, l.o.dialAddrs[i%len(l.o.dialAddrs)], l.user(i), l.key(i))
		d := time.Since(t)
		mu.Lock()
		if err != nil {
			s.LoginFailed++
		} else {
			s.Logins++
			lat = append(lat, d)
			if created {
				s.Registered++
			}
		}
		mu.Unlock()
		if err != nil {
			l.errs.add(fmt.Errorf("login: %w", err))
			return true
		}
		l.clients[i] = c
		l.readers.Add(1)
		go l.read(i, c)
		return true
	})
	secs := time.Since(start).Seconds()
	s.LoginSecs = round3(secs)
	s.LoginsPerS = round3(float64(s.Logins) / secs)
	s.LoginLat = summarize(lat)
}

// read consumes what the server sends to client i until the stream ends.
func (l *load) read(i int, c *client) {
	defer l.readers.Done()
	dl, _ := l.ctx.Deadline()
	_ = c.conn.SetReadDeadline(dl)
	for {
		el, err := c.r.Next()
		if err != nil {
			if !l.closing.Load() {
				l.dropped.Add(1)
				l.errs.add(fmt.Errorf("connection ended early: %w", err))
			}
			return
		}
		switch el.Name.Local {
		case "message":
			if l.chat != nil {
				// When the message reached the socket; else now.
				at := time.Duration(l.sinceStart())
				if ns, ok := lastArrival(c.raw); ok {
					at = time.Duration(ns - l.t0.UnixNano())
				}
				l.chat.received(i, el, at)
			}
		case "iq":
			if t := el.Get("type"); (t == "get" || t == "set") && el.Child("urn:xmpp:ping", "ping") != nil {
				_ = c.send("<iq type='result' id='" + escape(el.Get("id")) + "' to='" + escape(el.Get("from")) + "'/>")
			}
		case "error":
			if el.Name.Space == xmlstream.NSStream && !l.closing.Load() {
				l.errs.add(fmt.Errorf("stream error: %s", short(el)))
			}
		}
	}
}

// closeAll closes every stream, gives the server a moment to close its
// side, then cuts what is left. Only the first call does anything.
func (l *load) closeAll() { l.closed.Do(l.closeStreams) }

func (l *load) closeStreams() {
	l.closing.Store(true)
	for _, c := range l.clients {
		if c != nil {
			c.closeStream()
		}
	}
	done := make(chan struct{})
	go func() { l.readers.Wait(); close(done) }()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		l.errs.add(errors.New("server did not close every stream within 10s"))
	case <-l.ctx.Done():
	}
	for _, c := range l.clients {
		if c != nil {
			_ = c.conn.Close()
		}
	}
	<-done // every reader returns once its connection is closed
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

func (s *summary) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("scenario    %s: %d users, %s, %d logins in flight (file limit %d)", s.Scenario, s.Users, s.Mech, s.Concurrency, s.FileLimit)
	p("logins      %d ok, %d failed in %.2fs: %.1f logins/s (%d accounts registered)", s.Logins, s.LoginFailed, s.LoginSecs, s.LoginsPerS, s.Registered)
	p("login time  %s", s.LoginLat)
	if s.LoginCPUms > 0 {
		p("login CPU   %.2f ms of server CPU per login", s.LoginCPUms)
	}
	p("dropped     %d connections ended by the server before the client closed", s.Dropped)
	if s.Scenario == "chat" {
		p("messages    %d sent, %d received, %d lost, %d bounced, %d ack timeouts in %.2fs: %.1f msgs/s",
			s.Sent, s.Received, s.Lost, s.Bounced, s.Timeouts, s.ChatSecs, s.MsgsPerS)
		p("latency     %s (one-way, send to receipt)", s.OneWayLat)
		if s.MsgCPUus > 0 {
			p("message CPU %.1f µs of server CPU per message delivered", s.MsgCPUus)
		}
	}
	if s.RSSIdleKB > 0 {
		p("server RSS  idle %s, connected %s, after close %s, peak %s", mb(s.RSSIdleKB), mb(s.RSSConnectedKB), mb(s.RSSAfterKB), mb(s.RSSPeakKB))
		p("  anonymous idle %s, connected %s (RssAnon: heap and stacks, not the binary's pages)", mb(s.AnonIdleKB), mb(s.AnonConnectedKB))
		p("per client  %.1f KB RSS, %.1f KB anonymous ((connected - idle) / %d logins)", s.RSSPerClientKB, s.AnonPerClientKB, s.Logins)
	}
	for _, e := range s.Errors {
		p("error       %s", e)
	}
	return nil
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }
