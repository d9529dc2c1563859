package main

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestStampConn: a read over loopback is stamped with the time its data
// arrived, between the write and the read's return.
func TestStampConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := stamped(c)
	if _, ok := sc.(*stampConn); !ok {
		t.Fatalf("stamped(TCP conn) = %T, want *stampConn", sc)
	}
	if _, ok := lastArrival(sc); ok {
		t.Error("an arrival time before any read")
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()

	// The kernel turns timestamps on a moment after the first socket asks
	// (if none had): the first reads may come without one.
	buf := make([]byte, 16)
	stampedRead := false
	for try := 0; try < 100 && !stampedRead; try++ {
		before := time.Now().UnixNano()
		if _, err := peer.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		n, err := sc.Read(buf)
		after := time.Now().UnixNano()
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("Read = %q, %v; want hello", buf[:n], err)
		}
		at, ok := lastArrival(sc)
		if !ok {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		stampedRead = true
		if at < before || at > after {
			t.Errorf("arrival %d ns after the write, %d ns before the read returned: want within", at-before, after-at)
		}
	}
	if !stampedRead {
		t.Fatal("no read of 100 was stamped with its arrival time")
	}

	peer.Close()
	if n, err := sc.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
	}
}
