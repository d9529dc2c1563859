package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"casp3r/internal/xmlstream"
)

// ackTimeout is how long a saturating sender waits for its message to
// arrive before it counts a timeout and sends the next one.
const ackTimeout = 10 * time.Second

// drainTimeout is how long to wait, after the last send, for messages
// still on their way.
const drainTimeout = 10 * time.Second

// chat is the chat scenario: every logged-in user sends -messages chat
// messages to the bare JID of the next logged-in user (in a ring). The id
// names sender and sequence number ("m<sender>-<seq>"); the body carries
// the send time in nanoseconds since the run began ("t=<ns>").
type chat struct {
	l        *load
	acks     []chan int        // by sender index: sequence numbers received
	lat      [][]time.Duration // by receiver index; written by its reader only
	sent     atomic.Int64
	recvd    atomic.Int64
	bounced  atomic.Int64
	timeouts atomic.Int64
	lastRecv atomic.Int64 // ns since t0
}

func newChat(l *load) *chat {
	c := &chat{l: l, acks: make([]chan int, l.o.users), lat: make([][]time.Duration, l.o.users)}
	for i := range c.acks {
		c.acks[i] = make(chan int, 1)
	}
	return c
}

// received is called by the reader of client i for each message, which
// arrived at time now (since the run's start).
func (c *chat) received(i int, el *xmlstream.Element, now time.Duration) {
	if el.Get("type") == "error" {
		c.bounced.Add(1)
		c.l.errs.add(fmt.Errorf("message bounced: %s", short(el)))
		return
	}
	sender, seq, ok := parseID(el.Get("id"))
	body := el.Child("", "body")
	if !ok || body == nil || sender >= len(c.acks) {
		return
	}
	ts, err := strconv.ParseInt(strings.TrimPrefix(body.Text(), "t="), 10, 64)
	if err != nil {
		return
	}
	c.lat[i] = append(c.lat[i], now-time.Duration(ts))
	c.lastRecv.Store(int64(now))
	c.recvd.Add(1)
	if c.l.o.rate == 0 {
		select {
		case c.acks[sender] <- seq:
		default: // a stale ack is still waiting; the sender skips it
		}
	}
}

func parseID(id string) (sender, seq int, ok bool) {
	rest, found := strings.CutPrefix(id, "m")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.Atoi(a)
	q, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || s < 0 {
		return 0, 0, false
	}
	return s, q, true
}

// run sends the messages, waits for them to arrive and fills s.
func (c *chat) run(s *summary) {
	var live []int
	for i, cl := range c.l.clients {
		if cl != nil {
			live = append(live, i)
		}
	}
	if len(live) == 0 || c.l.o.messages == 0 {
		return
	}
	cpu0 := c.l.serverCPU()
	start := time.Duration(c.l.sinceStart())
	var wg sync.WaitGroup
	for a, i := range live {
		to := c.l.user(live[(a+1)%len(live)]) + "@" + c.l.o.domain
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.l.o.rate == 0 {
				c.saturate(i, to)
			} else {
				// Senders are spread evenly over one interval.
				interval := time.Duration(float64(len(live)) / c.l.o.rate * float64(time.Second))
				c.paced(i, to, interval, time.Duration(a)*interval/time.Duration(len(live)))
			}
		}()
	}
	wg.Wait()

	// Wait for what is still on its way, polling the counters.
	deadline := time.Now().Add(drainTimeout)
	for c.recvd.Load()+c.bounced.Load() < c.sent.Load() && time.Now().Before(deadline) && c.l.ctx.Err() == nil {
		c.l.wait(10 * time.Millisecond)
	}
	cpu := c.l.serverCPU() - cpu0
	// Stop the readers before reading what they recorded.
	c.l.closeAll()
	var all []time.Duration
	for _, d := range c.lat {
		all = append(all, d...)
	}
	s.Sent, s.Received, s.Bounced, s.Timeouts = c.sent.Load(), c.recvd.Load(), c.bounced.Load(), c.timeouts.Load()
	s.Lost = s.Sent - s.Received - s.Bounced
	if secs := (time.Duration(c.lastRecv.Load()) - start).Seconds(); secs > 0 {
		s.ChatSecs = round3(secs)
		s.MsgsPerS = round3(float64(s.Received) / secs)
	}
	s.OneWayLat = summarize(all)
	if cpu > 0 && s.Received > 0 {
		s.MsgCPUus = round3(cpu.Seconds() * 1e6 / float64(s.Received))
	}
}

func (c *chat) send(i int, to string, seq int) bool {
	ts := c.l.sinceStart()
	err := c.l.clients[i].send("<message type='chat' to='" + to + "' id='m" + strconv.Itoa(i) + "-" + strconv.Itoa(seq) +
		"'><body>t=" + strconv.FormatInt(ts, 10) + "</body></message>")
	if err != nil {
		c.l.errs.add(fmt.Errorf("send: %w", err))
		return false
	}
	c.sent.Add(1)
	return true
}

// saturate sends one message at a time, each once the previous arrived.
func (c *chat) saturate(i int, to string) {
	timer := time.NewTimer(ackTimeout)
	defer timer.Stop()
	for seq := range c.l.o.messages {
		if c.l.ctx.Err() != nil || !c.send(i, to, seq) {
			return
		}
		timer.Reset(ackTimeout)
	wait:
		for {
			select {
			case got := <-c.acks[i]:
				if got == seq {
					break wait
				}
			case <-timer.C:
				c.timeouts.Add(1)
				break wait
			case <-c.l.ctx.Done():
				return
			}
		}
	}
}

// paced sends one message every interval, starting after offset, without
// waiting for them to arrive (open loop).
func (c *chat) paced(i int, to string, interval, offset time.Duration) {
	begin := time.Now().Add(offset)
	for seq := range c.l.o.messages {
		if d := time.Until(begin.Add(time.Duration(seq) * interval)); d > 0 {
			c.l.wait(d)
		}
		if c.l.ctx.Err() != nil || !c.send(i, to, seq) {
			return
		}
	}
}
