//go:build integration

package interop

import (
	"testing"
	"time"
)

// TestOfflineMessageSurvivesSIGKILL: a message to an offline user is stored
// durably before the server answers the next stanza, so it survives the
// server being killed (power cut) right after.
func TestOfflineMessageSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	s.start()
	const pw = "durable-pw"
	alice := s.addUser("alice", pw)
	bob := s.addUser("bob", pw)

	a, err := dialRaw(s.host, s.c2s, s.domain, "alice", pw, 20*time.Second)
	if err != nil {
		t.Fatalf("alice login: %v", err)
	}
	const body = "written just before the power cut"
	if err := a.message(bob, body); err != nil {
		t.Fatal(err)
	}
	// Stanzas of one stream are handled in order: once the ping is answered,
	// the message has been stored.
	if err := a.ping(s.domain); err != nil {
		t.Fatalf("alice: %v", err)
	}
	s.kill()
	a.close()

	s.start()
	b, err := dialRaw(s.host, s.c2s, s.domain, "bob", pw, 20*time.Second)
	if err != nil {
		t.Fatalf("bob login after restart: %v", err)
	}
	defer b.close()
	if err := b.write("<presence/>"); err != nil {
		t.Fatal(err)
	}
	m, err := b.waitMessage(body)
	if err != nil {
		t.Fatalf("bob did not get the message stored before SIGKILL: %v (other stanzas: %v)", err, b.queue)
	}
	if got := bare(m.attr("from")); got != alice {
		t.Errorf("message from %q, want %s", m.attr("from"), alice)
	}
}
