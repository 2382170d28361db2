package upstream

import (
	"bufio"
	"bytes"
)

// dotWriter writes a message for DATA (RFC 5321 section 4.5.2): every
// line ends in CRLF and a line starting with a dot gets another. A bare
// CR and a bare LF each end a line too, as CRLF: receivers differ on
// whether they end lines, and one that takes them for line ends could
// otherwise be shown an end of data, and a second transaction after it,
// inside the message (SMTP smuggling). Finish writes the terminating dot.
//
// It copies runs of lines into w, not a byte or a line at a time; w's
// buffer is what reaches the socket.
type dotWriter struct {
	w      *bufio.Writer
	stuff  bool // dot-stuff lines; false for a file, which has no DATA
	bol    bool // at the beginning of a line
	skipLF bool // the last byte was a CR, already written as CRLF
}

func newDotWriter(w *bufio.Writer) *dotWriter { return &dotWriter{w: w, stuff: true, bol: true} }

// newLineWriter writes lines ending in CRLF, as newDotWriter does, but
// without dot-stuffing: for the file upstream, whose .eml files a pickup
// mailer may read as loosely as an SMTP receiver.
func newLineWriter(w *bufio.Writer) *dotWriter { return &dotWriter{w: w, bol: true} }

func (d *dotWriter) Write(p []byte) (int, error) {
	n := len(p)
	if d.skipLF && len(p) > 0 {
		d.skipLF = false
		if p[0] == '\n' {
			p = p[1:]
		}
	}
	// Lines that need nothing are copied together: p[start:off] is
	// pending. The next LF is found once and kept, and a CR is looked
	// for only up to it, so that a message of bare CRs (or LFs) costs
	// no more than one of CRLFs.
	start, lf := 0, -1
	for off := 0; off < len(p); {
		if d.stuff && d.bol && p[off] == '.' {
			d.w.Write(p[start:off])
			d.w.WriteByte('.')
			start = off
		}
		if lf < off {
			lf = indexFrom(p, off, '\n')
		}
		d.bol = true
		cr := bytes.IndexByte(p[off:lf], '\r')
		switch {
		case cr >= 0 && off+cr+1 == lf && lf < len(p): // CRLF
			off = lf + 1
		case cr >= 0: // a bare CR
			off = d.endLine(p[start:off+cr], off+cr+1)
			start = off
			d.skipLF = off == len(p) // its LF may start the next write
		case lf < len(p): // a bare LF
			off = d.endLine(p[start:lf], lf+1)
			start = off
		default: // the line goes on in the next write
			d.bol = false
			off = len(p)
		}
	}
	if _, err := d.w.Write(p[start:]); err != nil {
		return 0, err
	}
	return n, nil
}

// endLine writes line and CRLF, and returns next.
func (d *dotWriter) endLine(line []byte, next int) int {
	d.w.Write(line)
	d.w.WriteString("\r\n")
	return next
}

// indexFrom is the index of c in p at or after off, len(p) when none.
func indexFrom(p []byte, off int, c byte) int {
	if i := bytes.IndexByte(p[off:], c); i >= 0 {
		return off + i
	}
	return len(p)
}

// Finish ends the last line and, when dot-stuffing, writes the
// terminating ".\r\n"; it does not flush.
func (d *dotWriter) Finish() error {
	var err error
	if !d.bol {
		_, err = d.w.WriteString("\r\n")
	}
	if d.stuff {
		_, err = d.w.WriteString(".\r\n")
	}
	d.bol, d.skipLF = true, false
	return err
}
