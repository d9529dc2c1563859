// Package tidy gives the Go heap's spare memory back to the operating
// system once a burst of work has passed.
//
// The runtime sizes the heap for the peak it last saw: after a burst (a
// thousand clients logging in at once when the server or the network comes
// back), the garbage of the TLS handshakes stays in the heap and its free
// pages stay mapped, because at idle no collection runs and the scavenger
// keeps what the heap goal allows. On a Raspberry Pi that is memory taken
// from the page cache for hours. The tidier watches runtime/metrics and,
// when allocation has gone quiet with much more memory held than the live
// heap needs, runs debug.FreeOSMemory once (a collection and a scavenge,
// milliseconds of CPU), then waits for the next burst.
package tidy

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Interval is how often the heap is looked at.
const Interval = 2 * time.Second

// Rules are the thresholds of a tidy; see Default.
type Rules struct {
	// Quiet is the most allocated in one interval for the server to count
	// as idle.
	Quiet uint64
	// Spare is the least held beyond the live heap (garbage not yet
	// collected, free pages not yet released) worth returning.
	Spare uint64
	// Burst is how much must be allocated after a tidy before the next one.
	Burst uint64
}

// Default rules: idle below 1 MB per interval, at least 2 MB to return, a
// new tidy after 16 MB of allocation.
var Default = Rules{Quiet: 1 << 20, Spare: 2 << 20, Burst: 16 << 20}

// Sample is what a decision needs from runtime/metrics.
type Sample struct {
	Allocs uint64 // bytes allocated since the process started
	Live   uint64 // the live heap at the last collection
	Held   uint64 // heap memory mapped and not released: objects, free and unused
}

// Tidier decides, interval after interval, when to tidy.
type Tidier struct {
	rules     Rules
	last      Sample
	haveLast  bool
	sinceTidy uint64 // bytes allocated since the last tidy
	tidied    bool   // a tidy happened and no burst has followed
}

// New returns a tidier with rules r.
func New(r Rules) *Tidier { return &Tidier{rules: r} }

// Next takes the sample of this interval and reports whether to tidy now.
func (t *Tidier) Next(s Sample) bool {
	if !t.haveLast {
		t.last, t.haveLast = s, true
		return false
	}
	allocated := s.Allocs - t.last.Allocs
	t.last = s
	t.sinceTidy += allocated
	if t.tidied && t.sinceTidy < t.rules.Burst {
		return false
	}
	// Before the first collection Live is 0 and the garbage of start-up
	// is all there is: collecting it costs more (the collector's own
	// structures) than it returns.
	if s.Live == 0 || allocated > t.rules.Quiet || s.Held < s.Live+t.rules.Spare {
		return false
	}
	t.tidied, t.sinceTidy = true, 0
	return true
}

var names = []string{
	"/gc/heap/allocs:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
}

// Read samples the runtime's metrics.
func Read() Sample {
	ms := make([]metrics.Sample, len(names))
	for i, n := range names {
		ms[i].Name = n
	}
	metrics.Read(ms)
	v := func(i int) uint64 {
		if ms[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return ms[i].Value.Uint64()
	}
	return Sample{Allocs: v(0), Live: v(1), Held: v(2) + v(3) + v(4)}
}

// Run tidies the process's heap by the default rules until ctx ends.
func Run(ctx context.Context, log *slog.Logger) {
	t := New(Default)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s := Read(); t.Next(s) {
			debug.FreeOSMemory()
			after := Read()
			log.Debug("returned spare heap memory", "held_before", s.Held, "held_after", after.Held, "live", after.Live)
		}
	}
}
