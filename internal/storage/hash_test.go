package storage

import (
	"bytes"
	"testing"
	"time"
)

func TestHashEvent(t *testing.T) {
	base := Event{Seq: 7, Type: "roster-set", Data: []byte(`{"jid":"a@b"}`), Time: time.Unix(0, 1700000000123456789), Prev: bytes.Repeat([]byte{1}, 32)}
	h0 := base.ComputeHash()
	if h := HashEvent(base.Prev, base.Seq, base.Type, base.Data, base.Time.UnixNano()); h != h0 {
		t.Fatal("HashEvent and ComputeHash differ")
	}
	if h := base.ComputeHash(); h != h0 {
		t.Fatal("hash is not deterministic")
	}
	// Changing any field, or moving bytes between adjacent fields, changes
	// the hash.
	tests := []struct {
		name   string
		change func(e *Event)
	}{
		{"seq", func(e *Event) { e.Seq++ }},
		{"type", func(e *Event) { e.Type = "roster-removed" }},
		{"data", func(e *Event) { e.Data = []byte(`{"jid":"a@c"}`) }},
		{"time", func(e *Event) { e.Time = e.Time.Add(1) }},
		{"prev", func(e *Event) { e.Prev = bytes.Repeat([]byte{2}, 32) }},
		{"no prev", func(e *Event) { e.Prev = nil }},
		{"byte from type to data", func(e *Event) { e.Type, e.Data = "roster-se", append([]byte("t"), e.Data...) }},
	}
	for _, tt := range tests {
		e := base
		tt.change(&e)
		if e.ComputeHash() == h0 {
			t.Errorf("%s: hash unchanged", tt.name)
		}
	}
}

func TestHeadMessage(t *testing.T) {
	hash := bytes.Repeat([]byte{9}, 32)
	m := HeadMessage("juliet", 3, hash)
	tests := []struct {
		name    string
		account string
		seq     uint64
		hash    []byte
	}{
		{"account", "romeo", 3, hash},
		{"account prefix", "julie", 3, hash},
		{"seq", "juliet", 4, hash},
		{"hash", "juliet", 3, bytes.Repeat([]byte{8}, 32)},
	}
	for _, tt := range tests {
		if bytes.Equal(HeadMessage(tt.account, tt.seq, tt.hash), m) {
			t.Errorf("%s: same message", tt.name)
		}
	}
	if !bytes.Equal(HeadMessage("juliet", 3, hash), m) {
		t.Error("HeadMessage is not deterministic")
	}
}
