package stream

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

func TestQueueWritesInOrderAndBatches(t *testing.T) {
	var mu sync.Mutex
	var out bytes.Buffer
	batches := 0
	q := NewQueue(1<<20, func(frames [][]byte) error {
		mu.Lock()
		defer mu.Unlock()
		batches++
		for _, f := range frames {
			out.Write(f)
		}
		return nil
	}, nil, func(error) { t.Error("write failed") })
	for i := range 1000 {
		if !q.Push([]byte{byte('a' + i%26)}) {
			t.Fatalf("push %d refused", i)
		}
	}
	q.Flush()
	mu.Lock()
	defer mu.Unlock()
	if out.Len() != 1000 {
		t.Fatalf("wrote %d bytes, want 1000", out.Len())
	}
	for i, c := range out.Bytes() {
		if c != byte('a'+i%26) {
			t.Fatalf("byte %d out of order", i)
		}
	}
	if batches == 0 || batches > 1000 {
		t.Fatalf("%d batches", batches)
	}
}

func TestQueueBound(t *testing.T) {
	block := make(chan struct{})
	q := NewQueue(10, func([][]byte) error { <-block; return nil }, nil, func(error) {})
	if !q.Push(make([]byte, 8)) { // taken by the writer at once, or queued
		t.Fatal("first push refused")
	}
	refused := false
	for range 5 {
		if !q.Push(make([]byte, 8)) {
			refused = true
			break
		}
	}
	close(block)
	if !refused {
		t.Fatal("queue accepted more than its bound while the writer was stuck")
	}
	q.Flush()
}

func TestQueueWriteFailureClosesIt(t *testing.T) {
	failed := make(chan error, 1)
	q := NewQueue(100, func([][]byte) error { return errors.New("broken pipe") }, nil, func(err error) { failed <- err })
	q.Push([]byte("x"))
	if err := <-failed; err == nil {
		t.Fatal("no failure reported")
	}
	q.Flush()
	if q.Push([]byte("y")) {
		t.Fatal("push accepted after a failed write")
	}
}

func TestQueueCloseAfter(t *testing.T) {
	var got bytes.Buffer
	q := NewQueue(100, func(frames [][]byte) error {
		for _, f := range frames {
			got.Write(f)
		}
		return nil
	}, nil, func(error) {})
	q.Push([]byte("a"))
	q.CloseAfter([]byte("b"), []byte("c"))
	if got.String() != "abc" {
		t.Fatalf("wrote %q", got.String())
	}
	if q.Push([]byte("d")) {
		t.Fatal("push accepted after close")
	}
}

func TestQueueFlushWaitsForTheWriter(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	written := 0
	q := NewQueue(100, func(frames [][]byte) error {
		<-release
		mu.Lock()
		written += len(frames)
		mu.Unlock()
		return nil
	}, nil, func(error) {})
	q.Push([]byte("a"))
	seen := make(chan int)
	for range 3 {
		go func() {
			q.Flush() // returns only once the frame is written
			mu.Lock()
			defer mu.Unlock()
			seen <- written
		}()
	}
	close(release)
	for range 3 {
		if got := <-seen; got != 1 {
			t.Fatalf("Flush returned with %d frames written, want 1", got)
		}
	}
}
