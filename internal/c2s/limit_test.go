package c2s

import (
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b tokenBucket
	// A full bucket: burst tokens at once.
	for i := range 4 {
		if d := b.take(t0, 2, 4); d != 0 {
			t.Fatalf("take %d of the burst: wait %v, want 0", i, d)
		}
	}
	tests := []struct {
		at   time.Duration // after t0
		want time.Duration
	}{
		{0, 500 * time.Millisecond},           // empty: the next token in 1/2 s
		{0, time.Second},                      // taken ahead: one more later
		{time.Second, 500 * time.Millisecond}, // 2 tokens came, 2 were owed
		{10 * time.Second, 0},                 // refilled, up to the burst only
		{10 * time.Second, 0},
		{10 * time.Second, 0},
		{10 * time.Second, 0},
		{10 * time.Second, 500 * time.Millisecond},
	}
	for i, tt := range tests {
		if got := b.take(t0.Add(tt.at), 2, 4); got != tt.want {
			t.Errorf("take %d at +%v: wait %v, want %v", i, tt.at, got, tt.want)
		}
	}
}

func TestTokenBucketAllocs(t *testing.T) {
	var b tokenBucket
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { b.take(now, 200, 400) }); n != 0 {
		t.Fatalf("%v allocations per take, want 0", n)
	}
}
