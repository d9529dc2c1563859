// Package stream holds what client and server streams (RFC 6120) share
// beyond XML parsing: the bounded outbound queue that a connection writes
// through in batches.
package stream

import (
	"sync"
	"time"
)

// Queue is a connection's bounded outbound queue. Senders append encoded
// elements; a writer goroutine is started only while the queue is not
// empty and writes everything queued in one batch (one syscall on TCP), so
// an idle connection holds no writer goroutine.
type Queue struct {
	mu      sync.Mutex
	frames  [][]byte
	bytes   int
	max     int
	writing bool
	closed  bool
	idle    chan struct{} // made by a waiter while writing; closed when the writer stops
	write   func([][]byte) error
	onFail  func(error)
	setWD   func(time.Time) error
}

// NewQueue returns a queue of at most max bytes writing with write; setWriteDeadline
// (optional) bounds each batch by WriteLimit, and onFail is told of a failed write.
func NewQueue(max int, write func([][]byte) error, setWriteDeadline func(time.Time) error, onFail func(error)) *Queue {
	return &Queue{max: max, write: write, onFail: onFail, setWD: setWriteDeadline}
}

// WriteLimit is how long a batch (the Queue's) or a write that waits (a
// Socket's, by default) may wait for a peer that reads nothing.
const WriteLimit = 30 * time.Second

// Push queues one encoded element. It reports false when the queue is over
// its bound or closed; the caller then ends the session.
func (q *Queue) Push(frame []byte) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if q.bytes+len(frame) > q.max && q.bytes > 0 {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, frame)
	q.bytes += len(frame)
	start := !q.writing
	if start {
		q.writing = true
	}
	q.mu.Unlock()
	if start {
		go q.run()
	}
	return true
}

func (q *Queue) run() {
	for {
		q.mu.Lock()
		frames := q.frames
		if len(frames) == 0 {
			q.frames = nil
			q.stoppedLocked()
			q.mu.Unlock()
			return
		}
		q.frames = nil
		q.bytes = 0
		q.mu.Unlock()
		if q.setWD != nil {
			_ = q.setWD(time.Now().Add(WriteLimit))
		}
		if err := q.write(frames); err != nil {
			q.mu.Lock()
			q.closed = true
			q.frames = nil
			q.stoppedLocked()
			q.mu.Unlock()
			q.onFail(err)
			return
		}
	}
}

// stoppedLocked marks the writer stopped and wakes those waiting for it.
func (q *Queue) stoppedLocked() {
	q.writing = false
	if q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
}

// waitLocked waits, with q.mu held, until no writer runs. The channel it
// waits on is made only then: an idle queue holds none.
func (q *Queue) waitLocked() {
	for q.writing {
		if q.idle == nil {
			q.idle = make(chan struct{})
		}
		idle := q.idle
		q.mu.Unlock()
		<-idle
		q.mu.Lock()
	}
}

// Flush waits until everything queued so far was written (or failed).
func (q *Queue) Flush() {
	q.mu.Lock()
	q.waitLocked()
	q.mu.Unlock()
}

// CloseAfter queues the last frames, waits until they are written and
// refuses anything after them.
func (q *Queue) CloseAfter(last ...[]byte) {
	for _, f := range last {
		q.Push(f)
	}
	q.mu.Lock()
	q.closed = true
	q.waitLocked()
	q.mu.Unlock()
}
