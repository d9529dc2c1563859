package clusternode_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"casp3r/internal/sasl"
	"casp3r/internal/storage"
)

// isolate cuts (or heals) every link to and from node k.
func isolate(links [][]*linkProxy, k int, cut bool) {
	for i := range links {
		if i != k {
			links[i][k].setCut(cut)
			links[k][i].setCut(cut)
		}
	}
}

func createAccount(ctx context.Context, n *node, user string) error {
	c, err := sasl.NewCredentials("pw", 4096)
	if err != nil {
		return err
	}
	return n.srv.Store().CreateAccount(ctx, user,
		storage.Credentials{SHA1: storage.ScramKeys(c.SHA1), SHA256: storage.ScramKeys(c.SHA256)})
}

// TestPartition cuts one node off from the two others: the majority goes
// on writing, the cut-off node refuses writes (no split brain), and once
// the links heal every node holds the same data.
func TestPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three cluster nodes")
	}
	nodes, links := startClusterLinks(t, 3, true, 0, nil)
	ctx := context.Background()
	if err := createAccount(ctx, nodes[0], "before"); err != nil {
		t.Fatal(err)
	}
	isolate(links, 2, true)
	cut := time.Now()

	// The minority's write fails (after the write timeout) and leaves
	// nothing behind.
	minority := make(chan error, 1)
	go func() { minority <- createAccount(ctx, nodes[2], "minority") }()

	// The majority writes again once it has a log leader.
	var majorityAt time.Duration
	for i := 0; ; i++ {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := createAccount(wctx, nodes[i%2], fmt.Sprintf("majority%d", i))
		cancel()
		if err == nil {
			majorityAt = time.Since(cut)
			break
		}
		if time.Since(cut) > 30*time.Second {
			t.Fatalf("the majority still refuses writes 30 s after the partition: %v", err)
		}
	}
	t.Logf("majority writes again %v after the partition", majorityAt.Round(time.Millisecond))
	select {
	case err := <-minority:
		if err == nil {
			t.Fatalf("the cut-off node acknowledged a write: split brain")
		}
		if errors.Is(err, storage.ErrExists) {
			t.Fatalf("the cut-off node's write: %v", err)
		}
		t.Logf("cut-off node refused the write after %v: %v", time.Since(cut).Round(time.Millisecond), err)
	case <-time.After(60 * time.Second):
		t.Fatalf("the cut-off node's write neither failed nor succeeded within 60 s")
	}
	if ok, _ := nodes[2].srv.Store().AccountExists(ctx, "minority"); ok {
		t.Errorf("the refused account exists on the cut-off node")
	}

	isolate(links, 2, false)
	healed := time.Now()
	waitFor(t, 60*time.Second, "equal data on every node after healing", func() bool {
		d := digest(t, nodes[0])
		return d == digest(t, nodes[1]) && d == digest(t, nodes[2])
	})
	t.Logf("converged %v after healing", time.Since(healed).Round(time.Millisecond))
	// The healed node takes writes again.
	waitFor(t, 30*time.Second, "a write on the healed node", func() bool {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return createAccount(wctx, nodes[2], "after") == nil
	})
	waitFor(t, 10*time.Second, "every account on node 1", func() bool {
		accts, err := nodes[0].srv.Store().Accounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"before", "majority0", "after"} {
			if !slices.Contains(accts, want) {
				return false
			}
		}
		return true
	})
}
