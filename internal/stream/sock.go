package stream

// readMode is what a sock's read does when the socket has nothing (see
// sock, Linux only; elsewhere Socket makes none).
type readMode uint8

const (
	readWait   readMode = iota // wait for bytes (within the deadline or limit)
	readNoWait                 // take what the socket has; if nothing, errWouldBlock
	readNone                   // do not read the socket at all: errWouldBlock
)
