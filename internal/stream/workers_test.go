package stream

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorkersRunInOrderPerCaller(t *testing.T) {
	p := NewWorkers(4, time.Second)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1
			for i := range 200 {
				p.Do(func() {
					if i != last+1 {
						t.Errorf("caller %d: %d after %d", c, i, last)
					}
					last = i
				})
			}
		}()
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count > 4 {
		t.Fatalf("%d workers, bound is 4", p.count)
	}
}

func TestWorkersAtBoundRunOnCaller(t *testing.T) {
	p := NewWorkers(1, time.Second)
	block := make(chan struct{})
	started := make(chan struct{})
	go p.Do(func() { close(started); <-block })
	<-started
	var ran atomic.Bool
	p.Do(func() { ran.Store(true) }) // the only worker is busy: runs here
	close(block)
	if !ran.Load() {
		t.Fatal("work did not run")
	}
}

func TestWorkersShrinkWhenIdle(t *testing.T) {
	p := NewWorkers(4, 10*time.Millisecond)
	p.Do(func() {})
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n := p.count
		p.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still alive", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
