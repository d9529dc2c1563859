package storage

import (
	"crypto/sha256"
	"encoding/binary"
)

// Domain separation prefixes of the hashed and signed messages, so that an
// event hash can never be mistaken for a head signature message and vice
// versa.
const (
	eventHashPrefix = "casp3r event v1\x00"
	headSigPrefix   = "casp3r head v1\x00"
)

// HashEvent returns the SHA-256 hash of an event: the hash over
// prev | seq | type | data | time, each variable-length field preceded by
// its length as a big-endian uint32, seq as a big-endian uint64 and time as
// big-endian int64 Unix nanoseconds, after a fixed version prefix. The
// encoding is unambiguous, so two different events never hash the same
// input.
func HashEvent(prev []byte, seq uint64, typ string, data []byte, unixNano int64) [sha256.Size]byte {
	h := sha256.New()
	var b [8]byte
	h.Write([]byte(eventHashPrefix))
	writeLen(h, &b, len(prev))
	h.Write(prev)
	binary.BigEndian.PutUint64(b[:], seq)
	h.Write(b[:])
	writeLen(h, &b, len(typ))
	h.Write([]byte(typ))
	writeLen(h, &b, len(data))
	h.Write(data)
	binary.BigEndian.PutUint64(b[:], uint64(unixNano))
	h.Write(b[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// ComputeHash returns [HashEvent] of e (ignoring e.Hash).
func (e *Event) ComputeHash() [sha256.Size]byte {
	return HashEvent(e.Prev, e.Seq, e.Type, e.Data, e.Time.UnixNano())
}

func writeLen(h interface{ Write([]byte) (int, error) }, b *[8]byte, n int) {
	binary.BigEndian.PutUint32(b[:4], uint32(n))
	h.Write(b[:4])
}

// HeadMessage returns the message signed for the head of an account's log:
// a fixed version prefix, then the account name preceded by its length as a
// big-endian uint32, the seq as a big-endian uint64 and the hash of the last
// event. Binding the account name keeps a head of one account from being
// presented as another's.
func HeadMessage(account string, seq uint64, hash []byte) []byte {
	m := make([]byte, 0, len(headSigPrefix)+4+len(account)+8+len(hash))
	m = append(m, headSigPrefix...)
	m = binary.BigEndian.AppendUint32(m, uint32(len(account)))
	m = append(m, account...)
	m = binary.BigEndian.AppendUint64(m, seq)
	m = append(m, hash...)
	return m
}
