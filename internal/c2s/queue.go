package c2s

import (
	"sync"
	"time"
)

// outQueue is a session's bounded outbound queue. Senders append encoded
// elements; a writer goroutine is started only while the queue is not
// empty and writes everything queued in one batch (one syscall on TCP).
type outQueue struct {
	mu       sync.Mutex
	frames   [][]byte
	bytes    int
	max      int
	writing  bool
	closed   bool
	idle     *sync.Cond // signalled when the writer stops
	write    func([][]byte) error
	onFail   func(error)
	deadline time.Duration
	setWD    func(time.Time) error
}

func newOutQueue(max int, write func([][]byte) error, setWriteDeadline func(time.Time) error, onFail func(error)) *outQueue {
	q := &outQueue{max: max, write: write, onFail: onFail, deadline: 30 * time.Second, setWD: setWriteDeadline}
	q.idle = sync.NewCond(&q.mu)
	return q
}

// push queues one encoded element. It reports false when the queue is over
// its bound or closed; the caller then ends the session.
func (q *outQueue) push(frame []byte) bool {
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

func (q *outQueue) run() {
	for {
		q.mu.Lock()
		frames := q.frames
		if len(frames) == 0 {
			q.frames = nil
			q.writing = false
			q.idle.Broadcast()
			q.mu.Unlock()
			return
		}
		q.frames = nil
		q.bytes = 0
		q.mu.Unlock()
		if q.setWD != nil {
			_ = q.setWD(time.Now().Add(q.deadline))
		}
		if err := q.write(frames); err != nil {
			q.mu.Lock()
			q.closed = true
			q.frames = nil
			q.writing = false
			q.idle.Broadcast()
			q.mu.Unlock()
			q.onFail(err)
			return
		}
	}
}

// flush waits until everything queued so far was written (or failed).
func (q *outQueue) flush() {
	q.mu.Lock()
	for q.writing {
		q.idle.Wait()
	}
	q.mu.Unlock()
}

// closeAfter queues the last frames, waits until they are written and
// refuses anything after them.
func (q *outQueue) closeAfter(last ...[]byte) {
	for _, f := range last {
		q.push(f)
	}
	q.mu.Lock()
	q.closed = true
	for q.writing {
		q.idle.Wait()
	}
	q.mu.Unlock()
}
