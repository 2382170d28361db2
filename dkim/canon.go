package dkim

import (
	"bytes"
	"hash"
)

var crlf = []byte("\r\n")

// canonicalize writes body to w in DKIM's simple or relaxed body
// canonicalization (RFC 6376 section 3.4.3 and 3.4.4): every line ends in
// CRLF, empty lines at the end are dropped, and, relaxed, runs of spaces
// and tabs become one space and none remain at a line's end. An empty
// body is CRLF in simple and nothing in relaxed.
func canonicalize(w *limited, body []byte, relaxed bool) {
	empties := 0 // empty lines held back: they count only if more follows
	wrote := false
	var buf []byte
	for len(body) > 0 {
		line, rest, found := bytes.Cut(body, []byte("\n"))
		body = rest
		if found {
			line = bytes.TrimSuffix(line, []byte("\r"))
		}
		if relaxed {
			buf = relax(buf[:0], line)
			line = buf
		}
		if len(line) == 0 {
			empties++
			continue
		}
		for ; empties > 0; empties-- {
			w.write(crlf)
		}
		w.write(line)
		w.write(crlf)
		wrote = true
	}
	if !wrote && !relaxed {
		w.write(crlf)
	}
}

// relax appends line to dst with each run of spaces and tabs made one
// space and the run at the end removed.
func relax(dst, line []byte) []byte {
	space := false
	for _, c := range line {
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space {
			dst = append(dst, ' ')
			space = false
		}
		dst = append(dst, c)
	}
	return dst
}

// limited writes to a hash at most left bytes (l=); left < 0 is no limit.
type limited struct {
	w    hash.Hash
	left int64
}

func (l *limited) write(p []byte) {
	if l.left >= 0 {
		if int64(len(p)) > l.left {
			p = p[:l.left]
		}
		l.left -= int64(len(p))
	}
	l.w.Write(p)
}
