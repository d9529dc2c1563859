package main

import (
	"bufio"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// latency summarizes durations in milliseconds (nearest-rank percentiles).
type latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(d)))) - 1
		i = min(max(i, 0), len(d)-1)
		return ms(d[i])
	}
	return latency{N: len(d), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(d[len(d)-1])}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func (l latency) String() string {
	if l.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms (n=%d)", l.P50, l.P90, l.P99, l.Max, l.N)
}

// memory holds VmRSS, its anonymous part RssAnon (heap, stacks: what
// the process made, as opposed to pages of its binary) and VmHWM (peak
// RSS) of a process, in KiB.
type memory struct{ rss, anon, hwm int64 }

// readMemory reads VmRSS, RssAnon and VmHWM from /proc/pid/status.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read server memory: %w", err)
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.rss
		case "RssAnon":
			dst = &m.anon
		case "VmHWM":
			dst = &m.hwm
		}
		if !ok || dst == nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("parse %s %q: %w", k, v, err)
		}
		*dst = n
	}
	if err := sc.Err(); err != nil {
		return memory{}, fmt.Errorf("read server memory: %w", err)
	}
	if m.rss == 0 {
		return memory{}, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// processCPU reads the user and system CPU time of a process from
// /proc/pid/stat (fields 14 and 15, in clock ticks of 1/100 s: USER_HZ is
// 100 in Linux's user ABI).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read server cpu: %w", err)
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from its closing parenthesis.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime (fields 14, 15)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// loopbackAddr resolves addr and refuses anything but a loopback address
// (127.0.0.0/8, ::1): this tool is for one's own machine. It returns the
// address to dial, so that the checked address is the one used.
func loopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("-addr %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		if host != "localhost" {
			return "", fmt.Errorf("-addr %q: give a loopback IP address (127.x.y.z or ::1) or localhost", addr)
		}
		ip = net.IPv4(127, 0, 0, 1)
	}
	if !ip.IsLoopback() {
		return "", fmt.Errorf("-addr %q: not a loopback address; this tool only loads a server on this machine", addr)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit (the Go
// runtime does so too since Go 1.19; doing it here keeps the figure known)
// and returns the resulting soft limit.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("get file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise file limit: %w", err)
		}
	}
	return lim.Cur, nil
}

// errorTally counts errors by message, keeping a few distinct ones.
type errorTally struct {
	mu    sync.Mutex
	count int
	kinds map[string]int
}

func (t *errorTally) add(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kinds == nil {
		t.kinds = make(map[string]int)
	}
	t.count++
	msg := err.Error()
	if _, ok := t.kinds[msg]; ok || len(t.kinds) < 8 {
		t.kinds[msg]++
	}
}

func (t *errorTally) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k, n := range t.kinds {
		out = append(out, fmt.Sprintf("%d× %s", n, k))
	}
	slices.Sort(out)
	return out
}
