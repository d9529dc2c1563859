package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// crashEnv names the database file the crash helper process writes to.
const crashEnv = "CASP3R_STORAGE_CRASH_DB"

// TestCrashHelper is the helper process of TestCrashDurability: it stores
// offline messages from several goroutines and prints "acked i" after each
// StoreOffline returns, until it is killed. It does nothing in a normal run.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process of TestCrashDurability")
	}
	db, err := Open(context.Background(), path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	const (
		workers = 8
		max     = 100000 // bound the run should the parent fail to kill us
	)
	var next atomic.Int64
	var out sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > max {
					return
				}
				if err := db.StoreOffline(context.Background(), "juliet", crashStanza(i), 0); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "acked %d\n", i) // unbuffered: one write per ack
				out.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(3) // not killed
}

func crashStanza(i int64) []byte {
	return []byte(fmt.Sprintf("<message to='juliet@example.com' id='m%d'><body>%d</body></message>", i, i))
}

// TestCrashDurability kills (SIGKILL) a process while it stores messages and
// checks that every message it acknowledged survives, and that the log
// verifies and the views match the log.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a helper process")
	}
	ctx := context.Background()
	db, path := openTest(t)
	mustCreate(t, db, "juliet")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	const killAfter = 300
	acked := make(map[int64]bool)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		s, ok := strings.CutPrefix(line, "acked ")
		if !ok {
			continue // output of the test framework
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("helper printed %q", line)
		}
		acked[i] = true
		if len(acked) == killAfter && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
		// Keep reading: acks written before the kill count too.
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("helper exited before it was killed: %v", err)
	}
	t.Logf("%d messages acknowledged before SIGKILL", len(acked))

	db2 := openPath(t, path)
	msgs, err := db2.OfflineMessages(ctx, "juliet")
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		stored[string(m.Stanza)] = true
	}
	for i := range acked {
		if !stored[string(crashStanza(i))] {
			t.Errorf("acknowledged message %d lost", i)
		}
	}
	t.Logf("%d messages stored (acknowledged ones plus those committed but not yet acknowledged)", len(msgs))
	mustVerify(t, db2, "juliet")
	want := dumpViews(t, path)
	if err := db2.RebuildViews(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dumpViews(t, path); got != want {
		t.Error("views after the crash do not match the log")
	}
}
