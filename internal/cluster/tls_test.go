package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// tap is a TCP proxy to target that keeps a copy of every byte it carries.
type tap struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	seen   bytes.Buffer
}

func newTap(t *testing.T, target string) *tap {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tap{l: l, target: target}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *tap) serve(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				p.seen.Write(buf[:n])
				p.mu.Unlock()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go cp(u, c)
	go cp(c, u)
	<-done
}

func (p *tap) bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.seen.Bytes())
}

// TestLinksEncrypted runs the route between nodes a and b through a tap:
// messages, log entries and session values cross it, and neither they nor
// the route password can be read on the wire, which carries TLS records.
func TestLinksEncrypted(t *testing.T) {
	cfgs := clusterConfigs(t, 3)
	a, b, c := &cfgs[0], &cfgs[1], &cfgs[2]
	tp := newTap(t, b.RouteListen)
	// a reaches b only through the tap, b does not dial a, and gossip
	// leads nowhere: the a–b route is the tapped one.
	a.Peers = []string{tp.l.Addr().String(), c.RouteListen}
	b.Peers = []string{c.RouteListen}
	for i := range cfgs {
		cfgs[i].Advertise = "127.0.0.1:9"
	}
	nodes := startNodes(t, cfgs)
	na, nb := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := na.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}

	const marker = "plain-text-marker-7f3a"
	got := make(chan []byte, 4)
	unsub, err := nb.Subscribe("user.tap", func(d []byte) { got <- d })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	waitFor(t, 10*time.Second, "a message from a to b", func() error {
		if err := na.Publish(ctx, "user.tap", []byte(marker+" message")); err != nil {
			return err
		}
		select {
		case d := <-got:
			if string(d) != marker+" message" {
				return fmt.Errorf("got %q", d)
			}
			return nil
		case <-time.After(200 * time.Millisecond):
			return fmt.Errorf("nothing arrived")
		}
	})
	if _, err := na.Append(ctx, "tapped", []byte(marker+" log entry")); err != nil {
		t.Fatal(err)
	}
	if _, err := na.PutSession(ctx, "s.a.tap", []byte(marker+" session")); err != nil {
		t.Fatal(err)
	}
	wire := tp.bytes()
	if len(wire) < 1000 {
		t.Fatalf("only %d bytes crossed the tapped route: the route does not go through it", len(wire))
	}
	for _, secret := range []string{marker, routePassword(testSecret), `"user":"` + routeUser} {
		if bytes.Contains(wire, []byte(secret)) {
			t.Errorf("%q is readable on the route (%d bytes seen)", secret, len(wire))
		}
	}
	// nats-server speaks INFO in clear, then TLS: a TLS 1.3 handshake
	// record (content type 22, legacy version 3.1) follows.
	if !bytes.Contains(wire, []byte{0x16, 0x03, 0x01}) {
		t.Errorf("no TLS handshake record on the route")
	}
}
