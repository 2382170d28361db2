package smtpproxy

import (
	"net"
	"sync"
)

// readAheadSize is the buffer a connection reads into while its client
// streams: one read system call for up to 64 KiB of a message body rather
// than one per 4 KiB, go-smtp's own buffer.
const readAheadSize = 64 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

// readAhead reads a connection through a pooled buffer, but only while the
// client sends more than the reader asks for; an idle session holds no
// buffer. Everything read ahead is returned by later Reads on the same
// connection, so after STARTTLS it goes to the TLS layer, which reads
// through here too.
type readAhead struct {
	conn      net.Conn
	buf       *[]byte // nil unless held: bytes read ahead are (*buf)[r:w]
	r, w      int
	err       error // the error of the read that filled buf, after its bytes
	streaming bool  // the last read from conn filled what was asked
}

func (a *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if a.buf != nil {
		n := copy(p, (*a.buf)[a.r:a.w])
		a.r += n
		if a.r == a.w {
			a.release()
		}
		return n, nil
	}
	if err := a.err; err != nil {
		a.err = nil
		return 0, err
	}
	if !a.streaming || len(p) >= readAheadSize {
		n, err := a.conn.Read(p)
		a.streaming = n == len(p)
		return n, err
	}
	a.buf = readAheadPool.Get().(*[]byte)
	n, err := a.conn.Read(*a.buf)
	a.streaming = n > len(p)
	k := copy(p, (*a.buf)[:n])
	if k == n {
		a.release()
		return k, err
	}
	a.r, a.w, a.err = k, n, err
	return k, nil
}

func (a *readAhead) release() {
	readAheadPool.Put(a.buf)
	a.buf, a.r, a.w = nil, 0, 0
}
