package c2s

import "time"

// tokenBucket is a session's stanza rate limit: perSecond tokens a second
// up to burst, one per stanza. A token can be taken before it is due; the
// taker then waits for it. It is the whole limiter state a session keeps:
// the rate and burst are the server's.
type tokenBucket struct {
	tokens float64   // may be negative: tokens taken ahead
	last   time.Time // of the last take; zero: the bucket is full
}

// take takes a token at now and returns how long the taker must wait for
// it (0: at once).
func (b *tokenBucket) take(now time.Time, perSecond, burst float64) time.Duration {
	if b.last.IsZero() {
		b.tokens = burst
	} else if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(burst, b.tokens+dt.Seconds()*perSecond)
	}
	b.last = now
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / perSecond * float64(time.Second))
}
