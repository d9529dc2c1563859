package main

import (
	"math"
	"runtime/debug"
	"testing"

	"casp3r/internal/config"
)

func TestTuneRuntime(t *testing.T) {
	gc := debug.SetGCPercent(100)
	debug.SetGCPercent(gc)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	})
	for _, tc := range []struct {
		name      string
		limits    config.Limits
		env       map[string]string
		wantGC    int
		wantLimit int64
	}{
		{"settings", config.Limits{GCPercent: 40, Memory: 64 << 20}, nil, 40, 64 << 20},
		{"no memory limit", config.Limits{GCPercent: 50}, nil, 50, math.MaxInt64},
		{"environment wins", config.Limits{GCPercent: 40, Memory: 64 << 20},
			map[string]string{"GOGC": "80", "GOMEMLIMIT": "1GiB"}, 77, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What the runtime would have taken from the environment.
			debug.SetGCPercent(77)
			debug.SetMemoryLimit(math.MaxInt64)
			tuneRuntime(tc.limits, func(k string) string { return tc.env[k] })
			if got := debug.SetGCPercent(gc); got != tc.wantGC {
				t.Errorf("gc percent = %d, want %d", got, tc.wantGC)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit = %d, want %d", got, tc.wantLimit)
			}
		})
	}
}
