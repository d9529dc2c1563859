package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoopbackAddr(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{"127.0.0.1:5222", "127.0.0.1:5222", false},
		{"127.0.0.5:5222", "127.0.0.5:5222", false},
		{"[::1]:5222", "[::1]:5222", false},
		{"localhost:5222", "127.0.0.1:5222", false},
		{"10.0.0.1:5222", "", true},
		{"[2001:db8::1]:5222", "", true},
		{"example.org:5222", "", true},
		{"127.0.0.1", "", true},
	}
	for _, tt := range tests {
		got, err := loopbackAddr(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("loopbackAddr(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if got != tt.want {
			t.Errorf("loopbackAddr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		id          string
		sender, seq int
		ok          bool
	}{
		{"m0-0", 0, 0, true},
		{"m12-345", 12, 345, true},
		{"m12", 0, 0, false},
		{"x1-2", 0, 0, false},
		{"m-1-2", 0, 0, false},
		{"ma-2", 0, 0, false},
	}
	for _, tt := range tests {
		s, q, ok := parseID(tt.id)
		if ok != tt.ok || ok && (s != tt.sender || q != tt.seq) {
			t.Errorf("parseID(%q) = %d, %d, %v; want %d, %d, %v", tt.id, s, q, ok, tt.sender, tt.seq, tt.ok)
		}
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := summarize(d)
	want := latency{N: 100, P50: 50, P90: 90, P99: 99, Max: 100}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if got, want := summarize(nil), (latency{}); got != want {
		t.Errorf("summarize(nil) = %+v, want zero", got)
	}
}

func TestReadMemory(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if m.rss <= 0 || m.hwm < m.rss {
		t.Errorf("readMemory = %+v, want 0 < rss <= hwm", m)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args []string
		err  string // substring; "" for success
	}{
		{nil, ""},
		{[]string{"-scenario", "chat", "-rate", "100"}, ""},
		{[]string{"-addr", "192.0.2.1:5222"}, "not a loopback"},
		{[]string{"-mech", "DIGEST-MD5"}, "-mech"},
		{[]string{"-scenario", "flood"}, "-scenario"},
		{[]string{"-scenario", "chat", "-presence=false"}, "needs -presence"},
		{[]string{"-users", "0"}, "-users"},
		{[]string{"-rate", "-1"}, "-rate"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, io.Discard)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("parseFlags(%q) = %v, want success", tt.args, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseFlags(%q) = %v, want error containing %q", tt.args, err, tt.err)
		}
	}
}

func TestProcessCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	// Burn a little CPU so that at least one tick is counted.
	deadline := time.Now().Add(50 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = n * n
	}
	d, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Errorf("processCPU = %v, want > 0", d)
	}
}
