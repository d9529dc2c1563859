//go:build integration

package peers

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFederation: a Prosody and an ejabberd federate with each other. A
// user on each side adds the other, both see the other online, and a
// message goes each way. With self-signed certificates the s2s streams
// authenticate with dialback; with certificates from a common CA, with
// SASL EXTERNAL, whether dialback is allowed (and not used) or not.
func TestFederation(t *testing.T) {
	// What the logs show for each way of authenticating, in both s2s
	// directions (prosody.test -> ejabberd.test first).
	dialbackProsody := []string{"sent dialback key on outgoing s2s stream", "asking ejabberd.test if key"}
	dialbackEjabberd := []string{
		"Accepted inbound s2s dialback authentication prosody.test -> ejabberd.test",
		"Accepted outbound s2s dialback authentication ejabberd.test -> prosody.test",
	}
	externalProsody := []string{"SASL EXTERNAL with ejabberd.test succeeded", "Accepting SASL EXTERNAL identity from ejabberd.test"}
	externalEjabberd := []string{
		"Accepted inbound s2s EXTERNAL authentication prosody.test -> ejabberd.test",
		"Accepted outbound s2s EXTERNAL authentication ejabberd.test -> prosody.test",
	}
	for _, tc := range []struct {
		name       string
		ca         bool
		noDialback bool
		// Start Prosody first, so it needs ReloadDNS to find ejabberd.test;
		// else ejabberd needs it to find prosody.test.
		prosodyFirst bool
		// the logs must show want and must not show notWant
		wantProsody, wantEjabberd, notProsody, notEjabberd []string
	}{
		{
			name:        "self-signed/dialback",
			wantProsody: dialbackProsody, wantEjabberd: dialbackEjabberd,
			notProsody: externalProsody, notEjabberd: externalEjabberd,
		},
		{
			name:        "CA/SASL-EXTERNAL",
			ca:          true,
			wantProsody: externalProsody, wantEjabberd: externalEjabberd,
			notProsody: dialbackProsody, notEjabberd: dialbackEjabberd,
		},
		{
			name:         "CA/no-dialback",
			ca:           true,
			noDialback:   true,
			prosodyFirst: true,
			wantProsody:  externalProsody, wantEjabberd: externalEjabberd,
			notProsody: dialbackProsody, notEjabberd: dialbackEjabberd,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hosts := NewHosts(t) // each Start adds its own domain
			var ca *CA
			if tc.ca {
				ca = NewCA(t)
			}
			startEj := func() *Peer {
				return StartEjabberd(t, Options{Addr: "127.0.0.3", Domain: "ejabberd.test", Users: []string{"bob"},
					Hosts: hosts, CA: ca, NoDialback: tc.noDialback})
			}
			startPr := func() *Peer {
				return StartProsody(t, Options{Addr: "127.0.0.2", Domain: "prosody.test", Users: []string{"alice"},
					Hosts: hosts, CA: ca, NoDialback: tc.noDialback})
			}
			var pr, ej *Peer
			if tc.prosodyFirst {
				// ejabberd.test enters the hosts file after Prosody read it.
				pr = startPr()
				ej = startEj()
				pr.ReloadDNS()
			} else {
				// prosody.test enters the hosts file after ejabberd got its copy.
				ej = startEj()
				pr = startPr()
				ej.ReloadDNS()
			}
			for _, p := range []*Peer{pr, ej} {
				if got, want := listeners(t, p.Pid()), []string{p.Addr + ":5222", p.Addr + ":5269"}; !slices.Equal(got, want) {
					t.Errorf("%s listens on %v, want only %v", p, got, want)
				}
			}
			alice, bob := pr.JID("alice"), ej.JID("bob")

			a := pr.Connect(t, "alice")
			b := ej.Connect(t, "bob")
			a.WaitEvent("session", nil)
			b.WaitEvent("session", nil)

			// The subscription handshake, each side asking and approving.
			a.Subscribe(bob)
			b.Subscribe(alice)
			for _, s := range []struct {
				c    *Client
				peer string
			}{{a, bob}, {b, alice}} {
				s.c.Wait(s.peer+" in a roster push with subscription both", rosterPush(s.peer, "both"))
				s.c.Wait(s.peer+" available", presence(s.peer, "available"))
			}

			tag := rand.Text()[:8]
			a.Message(bob, "p2e "+tag)
			b.Wait("alice's message", message(alice, "p2e "+tag))
			b.Message(alice, "e2p "+tag)
			a.Wait("bob's message", message(bob, "e2p "+tag))
			a.Quit()
			b.Quit()

			checkLog(t, pr, tc.wantProsody, tc.notProsody)
			checkLog(t, ej, tc.wantEjabberd, tc.notEjabberd)
			for _, p := range []*Peer{pr, ej} {
				pid := p.Pid()
				p.Stop()
				if err := groupGone(pid); err != nil {
					t.Errorf("after Stop of %s: %v", p, err)
				}
			}
		})
	}
}

func checkLog(t *testing.T, p *Peer, want, notWant []string) {
	t.Helper()
	log := p.Log()
	for _, s := range want {
		if !strings.Contains(log, s) {
			t.Errorf("%s log lacks %q", p, s)
		}
	}
	for _, s := range notWant {
		if strings.Contains(log, s) {
			t.Errorf("%s log shows %q", p, s)
		}
	}
}

func bareJID(jid string) string {
	b, _, _ := strings.Cut(jid, "/")
	return b
}

func rosterPush(jid, subscription string) func(Event) bool {
	return func(e Event) bool {
		items, _ := e["items"].(map[string]any)
		return e.Str("event") == "roster_push" && items[jid] == subscription
	}
}

func presence(from, typ string) func(Event) bool {
	return func(e Event) bool {
		return e.Str("event") == "presence" && bareJID(e.Str("from")) == from && e.Str("type") == typ
	}
}

func message(from, body string) func(Event) bool {
	return func(e Event) bool {
		return e.Str("event") == "message" && bareJID(e.Str("from")) == from && e.Str("body") == body
	}
}

// listeners returns the sorted local addresses of the TCP sockets process
// pid listens on; IPv6 ones as "tcp6:<hex>".
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatalf("list sockets: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("list sockets: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fl := strings.Fields(line)
			if len(fl) < 10 || fl[3] != "0A" || !inodes[fl[9]] {
				continue
			}
			if f == "/proc/net/tcp6" {
				out = append(out, "tcp6:"+fl[1])
				continue
			}
			for _, a := range procNetTCP([]byte("header\n" + line)) {
				out = append(out, a.Addr().String()+":"+strconv.Itoa(int(a.Port())))
			}
		}
	}
	slices.Sort(out)
	return out
}

// groupGone waits a little for every process of group pgid to exit.
func groupGone(pgid int) error {
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process group %d still has processes (kill -0: %v)", pgid, err)
		}
		<-tick.C
	}
}
