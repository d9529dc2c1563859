package stream

import (
	"testing"
	"time"
)

// parkOnce parks c on p and returns a channel told when the wait ends.
func parkOnce(t *testing.T, c *Conn, p *Poller) chan struct{} {
	t.Helper()
	woke := make(chan struct{})
	if !c.WhenReadable(p, func() { close(woke) }) {
		t.Fatal("WhenReadable refused")
	}
	return woke
}

func newTestPoller(t *testing.T) *Poller {
	t.Helper()
	p := NewPoller(func(fn func()) { go fn() })
	if p == nil {
		t.Fatal("no poller on linux")
	}
	t.Cleanup(p.Close)
	return p
}

func TestPollerWakesOnInput(t *testing.T) {
	p := newTestPoller(t)
	srv, cli, _ := tlsPairOpen(t)
	for _, name := range []string{"a", "b", "c"} { // parked again each time
		if ok, err := srv.Ready(); ok || err != nil {
			t.Fatalf("Ready = %v, %v before input", ok, err)
		}
		woke := parkOnce(t, srv, p)
		if _, err := cli.Write([]byte("<" + name + "/>")); err != nil {
			t.Fatal(err)
		}
		<-woke
		ok, err := srv.Ready()
		if err != nil || !ok {
			t.Fatalf("Ready = %v, %v after the wake", ok, err)
		}
		el, err := srv.Next()
		if err != nil {
			t.Fatal(err)
		}
		if got := el.Name.Local; got != name {
			t.Fatalf("got <%s>, want <%s>", got, name)
		}
	}
}

func TestPollerInterruptAndAbortWake(t *testing.T) {
	for _, tt := range []struct {
		name string
		stop func(*Conn)
	}{
		{"interrupt", func(c *Conn) { c.Interrupt() }},
		{"abort", func(c *Conn) { _ = c.Abort() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPoller(t)
			srv, _, _ := tlsPairOpen(t)
			if ok, err := srv.Ready(); ok || err != nil {
				t.Fatalf("Ready = %v, %v", ok, err)
			}
			woke := parkOnce(t, srv, p)
			tt.stop(srv)
			<-woke
			if _, err := srv.Ready(); err == nil {
				t.Fatal("Ready after the stop: no error")
			}
		})
	}
}

func TestPollerInterruptBeforePark(t *testing.T) {
	p := newTestPoller(t)
	srv, _, _ := tlsPairOpen(t)
	if ok, err := srv.Ready(); ok || err != nil {
		t.Fatalf("Ready = %v, %v", ok, err)
	}
	srv.Interrupt()
	<-parkOnce(t, srv, p) // woken at once: not left waiting
}

func TestPollerCloseWakesWaits(t *testing.T) {
	p := NewPoller(func(fn func()) { go fn() })
	srv, _, _ := tlsPairOpen(t)
	if ok, err := srv.Ready(); ok || err != nil {
		t.Fatalf("Ready = %v, %v", ok, err)
	}
	woke := parkOnce(t, srv, p)
	p.Close()
	<-woke
	p.Close() // twice is fine
	if srv.WhenReadable(p, func() {}) {
		t.Fatal("parked on a closed poller")
	}
}

func TestPollerRefusesWithDeadline(t *testing.T) {
	p := newTestPoller(t)
	srv, _, _ := tlsPairOpen(t)
	if err := srv.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ok, err := srv.Ready(); ok || err != nil {
		t.Fatalf("Ready = %v, %v", ok, err)
	}
	if srv.WhenReadable(p, func() {}) {
		t.Fatal("parked with a read deadline")
	}
	if srv.WhenReadable(nil, func() {}) {
		t.Fatal("parked on no poller")
	}
}

func TestPollerManyConns(t *testing.T) {
	p := newTestPoller(t)
	const n = 20
	type pair struct {
		srv  *Conn
		woke chan struct{}
		cli  interface{ Write([]byte) (int, error) }
	}
	pairs := make([]pair, n)
	for i := range pairs {
		srv, cli, _ := tlsPairOpen(t)
		if ok, err := srv.Ready(); ok || err != nil {
			t.Fatalf("Ready = %v, %v", ok, err)
		}
		pairs[i] = pair{srv, parkOnce(t, srv, p), cli}
	}
	// Every other one is aborted; its socket's number may be taken again.
	for i := 0; i < n; i += 2 {
		_ = pairs[i].srv.Abort()
		<-pairs[i].woke
	}
	for i := 1; i < n; i += 2 {
		if _, err := pairs[i].cli.Write([]byte("<x/>")); err != nil {
			t.Fatal(err)
		}
		<-pairs[i].woke
		if ok, err := pairs[i].srv.Ready(); err != nil || !ok {
			t.Fatalf("conn %d: Ready = %v, %v", i, ok, err)
		}
	}
}
