package tidy

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestNext(t *testing.T) {
	const mb = 1 << 20
	r := Rules{Quiet: 1 * mb, Small: 4 * mb, Burst: 16 * mb}
	// steps: allocated in the interval (MB), live and held at its end (MB),
	// and whether to tidy. The first step is the start: allocated then is
	// what the process allocated before.
	type step struct {
		alloc, live, held float64
		want              bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"quiet from the start", []step{{1, 2, 5, false}, {0, 2, 5, false}, {0, 2, 5, false}}},
		{"before the first collection", []step{{1, 0, 5, false}, {40, 0, 40, false}, {0, 0, 40, false}}},
		{"burst, then quiet", []step{{1, 2, 5, false}, {40, 8, 14, false}, {0.5, 8, 14, true}}},
		{"once per burst", []step{{1, 2, 5, false}, {40, 8, 14, false}, {0.5, 8, 14, true}, {0.1, 8, 11, false}, {0.1, 8, 11, false}}},
		{"the next burst allows the next tidy", []step{{1, 2, 5, false}, {40, 8, 14, false}, {0, 8, 14, true}, {20, 9, 15, false}, {0, 9, 15, true}}},
		{"busy: allocation never quiet", []step{{1, 2, 5, false}, {40, 8, 14, false}, {5, 8, 14, false}, {5, 8, 14, false}}},
		{"a burst of many small ones", []step{{1, 2, 5, false}, {0.9, 2, 5, false}, {8, 2, 6, false}, {8, 2, 6, false}, {0.5, 2, 6, true}}},
		{"live heap from a collection at the peak", []step{{1, 2, 5, false}, {40, 30, 31, false}, {0, 30, 31, true}}},
		{"small heap", []step{{1, 1, 2, false}, {40, 1, 3, false}, {0, 1, 3, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New(r)
			var allocs uint64
			for i, st := range tt.steps {
				allocs += uint64(st.alloc * mb)
				got := tr.Next(Sample{Allocs: allocs, Live: uint64(st.live * mb), Held: uint64(st.held * mb)})
				if got != st.want {
					t.Errorf("step %d (%+v): tidy = %v, want %v", i, st, got, st.want)
				}
			}
		})
	}
}

var sink [][]byte

// TestReadAfterGarbage: after a burst of garbage the metrics show the
// memory held, and a tidy gives it back.
func TestReadAfterGarbage(t *testing.T) {
	runtime.GC()
	for range 2000 {
		sink = append(sink, make([]byte, 16<<10)) // 32 MB
	}
	sink = nil
	s := Read()
	if s.Allocs == 0 || s.Held == 0 {
		t.Fatalf("Read = %+v, want allocations and held memory", s)
	}
	tr := New(Default)
	tr.Next(s)
	// A second sample right away: nothing allocated in between.
	if !tr.Next(Read()) {
		t.Fatalf("no tidy after 32 MB of garbage: %+v", Read())
	}
	before := Read()
	debug.FreeOSMemory()
	after := Read()
	if before.Held-after.Held < 16<<20 {
		t.Errorf("a tidy returned %d KB of the 32 MB of garbage (held %d → %d KB)",
			(before.Held-after.Held)>>10, before.Held>>10, after.Held>>10)
	}
}
