// Package tidy gives the Go heap's spare memory back to the operating
// system once a burst of work has passed.
//
// The runtime sizes the heap for the peak it last saw: after a burst (a
// thousand clients logging in at once when the server or the network comes
// back), the garbage of the TLS handshakes stays in the heap and its free
// pages stay mapped, because at idle no collection runs and the scavenger
// keeps what the heap goal allows. On a Raspberry Pi that is memory taken
// from the page cache for hours. The tidier watches runtime/metrics and,
// when allocation has gone quiet after a burst, runs debug.FreeOSMemory
// once (a collection and a scavenge, milliseconds of CPU), then waits for
// the next burst. Whether the heap holds garbage cannot be told without a
// collection: the live heap the runtime reports is that of the last one,
// which may have run at the peak.
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
	// Small is the heap (held) below which there is nothing worth doing.
	Small uint64
	// Burst is how much must be allocated (since the start, then since
	// the last tidy) for a tidy.
	Burst uint64
}

// Default rules: idle below 1 MB per interval, a heap of at least 4 MB, a
// tidy after each 16 MB of allocation at most.
var Default = Rules{Quiet: 1 << 20, Small: 4 << 20, Burst: 16 << 20}

// Sample is what a decision needs from runtime/metrics.
type Sample struct {
	Allocs uint64 // bytes allocated since the process started
	Live   uint64 // the live heap at the last collection
	Held   uint64 // heap memory mapped and not released: objects, free and unused
}

// Tidier decides, interval after interval, when to tidy.
type Tidier struct {
	rules      Rules
	lastAllocs uint64 // Allocs of the previous sample; 0 before the first
	sinceTidy  uint64 // bytes allocated since the last tidy (or the start)
}

// New returns a tidier with rules r.
func New(r Rules) *Tidier { return &Tidier{rules: r} }

// Next takes the sample of this interval and reports whether to tidy now.
func (t *Tidier) Next(s Sample) bool {
	first := t.lastAllocs == 0
	allocated := s.Allocs - t.lastAllocs
	t.lastAllocs = s.Allocs
	t.sinceTidy += allocated
	if first {
		return false // allocated is all the process did before
	}
	// Before the first collection Live is 0 and the garbage of start-up
	// is all there is: collecting it costs more (the collector's own
	// structures) than it returns.
	if s.Live == 0 || t.sinceTidy < t.rules.Burst || allocated > t.rules.Quiet || s.Held < t.rules.Small {
		return false
	}
	t.sinceTidy = 0
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
