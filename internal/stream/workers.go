package stream

import (
	"sync"
	"time"
)

// Workers runs functions on a pool of goroutines that grows on demand and
// shrinks when idle. A connection's reader hands each stanza's work (parse,
// route, store) to Do and waits for it: the work keeps its order, while the
// deep stacks it needs (XML decoding, SQLite) grow on a few pooled
// goroutines instead of on every connection's reader, whose stack then
// stays small while the connection is idle.
type Workers struct {
	mu     sync.Mutex
	idle   []*worker
	count  int
	max    int
	linger time.Duration
}

type worker struct {
	work chan func()
}

// NewWorkers returns a pool of at most max goroutines; one idle for linger
// exits.
func NewWorkers(max int, linger time.Duration) *Workers {
	return &Workers{max: max, linger: linger}
}

var donePool = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// Do runs fn on a pool goroutine and returns when it has finished. When
// the pool is at its bound, fn runs on the caller's goroutine.
func (p *Workers) Do(fn func()) {
	w := p.get()
	if w == nil {
		fn()
		return
	}
	done := donePool.Get().(chan struct{})
	w.work <- func() {
		fn()
		done <- struct{}{}
	}
	<-done
	donePool.Put(done)
}

// Go runs fn on a pool goroutine without waiting for it; when the pool is
// at its bound, on a goroutine of its own.
func (p *Workers) Go(fn func()) {
	if w := p.get(); w != nil {
		w.work <- fn
		return
	}
	go fn()
}

func (p *Workers) get() *worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		return w
	}
	if p.count >= p.max {
		return nil
	}
	p.count++
	w := &worker{work: make(chan func())}
	go p.loop(w)
	return w
}

func (p *Workers) loop(w *worker) {
	t := time.NewTimer(p.linger)
	defer t.Stop()
	for {
		select {
		case fn := <-w.work:
			fn()
			p.mu.Lock()
			p.idle = append(p.idle, w)
			p.mu.Unlock()
			t.Reset(p.linger)
		case <-t.C:
			p.mu.Lock()
			for i, iw := range p.idle {
				if iw == w {
					p.idle = append(p.idle[:i], p.idle[i+1:]...)
					p.count--
					p.mu.Unlock()
					return
				}
			}
			p.mu.Unlock()
			// handed out just now: its work is on the way
			t.Reset(p.linger)
		}
	}
}
