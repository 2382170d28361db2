package unsubscribe

import (
	"bytes"
	"errors"
	"io"
)

// The writers here see a text part's decoded content go by in pieces, so
// that no part is ever held whole. Each keeps the last few bytes of a
// piece for the next one: a placeholder or </body> split between two
// pieces is still found.

var placeholder = []byte(Placeholder)

// keep is what a replacer carries: the placeholder but one byte.
const keep = len(Placeholder) - 1

// scan is the first look at a text part: how many placeholders it holds,
// where its last </body> starts, its line ending, and whether it holds
// one of the boundaries of the enclosing multiparts.
type scan struct {
	bounds       [][]byte
	keep         int // longer than any pattern searched for
	hasBound     bool
	carry        []byte
	n            int64 // bytes seen
	placeholders int
	bodyEnd      int64 // offset of the last </body>, or -1
	last         byte
	sawLF, crlf  bool
	prev         byte // the byte before p[0] in Write
}

func newScan(bounds []string) *scan {
	s := &scan{bodyEnd: -1, keep: keep}
	for _, b := range bounds {
		s.bounds = append(s.bounds, []byte(b))
		s.keep = max(s.keep, len(b))
	}
	return s
}

func (s *scan) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.lineEnding(p)
	base := s.n - int64(len(s.carry))
	data := p
	if len(s.carry) > 0 {
		s.carry = append(s.carry, p...)
		data = s.carry
	}
	done := 0
	for {
		k := bytes.Index(data[done:], placeholder)
		if k < 0 {
			break
		}
		s.placeholders++
		done += k + len(placeholder)
	}
	for i := 0; ; i++ {
		k := bytes.IndexByte(data[i:], '<')
		if k < 0 || i+k+7 > len(data) {
			break
		}
		i += k
		if isBodyEnd(data[i : i+7]) {
			s.bodyEnd = base + int64(i)
		}
	}
	for _, b := range s.bounds {
		s.hasBound = s.hasBound || bytes.Contains(data, b)
	}
	s.n += int64(len(p))
	s.last = p[len(p)-1]
	s.carry = append(s.carry[:0], data[max(done, len(data)-s.keep):]...)
	return len(p), nil
}

// isBodyEnd matches "</body" (any case) followed by ">" or a space.
func isBodyEnd(b []byte) bool {
	if !bytes.EqualFold(b[:6], []byte("</body")) {
		return false
	}
	switch b[6] {
	case '>', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

func (s *scan) lineEnding(p []byte) {
	if s.sawLF {
		return
	}
	if k := bytes.IndexByte(p, '\n'); k >= 0 {
		s.sawLF = true
		s.crlf = k > 0 && p[k-1] == '\r' || k == 0 && s.prev == '\r'
	}
	s.prev = p[len(p)-1]
}

// nl is the part's line ending: the first one it uses, else CRLF.
func (s *scan) nl() string {
	if s.sawLF && !s.crlf {
		return "\n"
	}
	return "\r\n"
}

// replacer writes what it is given with every placeholder replaced by
// link.
type replacer struct {
	dst   io.Writer
	link  []byte
	carry []byte
}

func (r *replacer) Write(p []byte) (int, error) {
	data := p
	if len(r.carry) > 0 {
		r.carry = append(r.carry, p...)
		data = r.carry
	}
	done := 0
	for {
		k := bytes.Index(data[done:], placeholder)
		if k < 0 {
			break
		}
		if err := write(r.dst, data[done:done+k], r.link); err != nil {
			return 0, err
		}
		done += k + len(placeholder)
	}
	from := max(done, len(data)-keep)
	if err := write(r.dst, data[done:from]); err != nil {
		return 0, err
	}
	r.carry = append(r.carry[:0], data[from:]...)
	return len(p), nil
}

func (r *replacer) Close() error { return write(r.dst, r.carry) }

// inserter writes what it is given with extra inserted at offset at.
type inserter struct {
	dst   io.Writer
	at, n int64
	extra []byte
	done  bool
}

func (w *inserter) Write(p []byte) (int, error) {
	if !w.done && w.at < w.n+int64(len(p)) {
		k := w.at - w.n
		w.done = true
		if err := write(w.dst, p[:k], w.extra, p[k:]); err != nil {
			return 0, err
		}
	} else if err := write(w.dst, p); err != nil {
		return 0, err
	}
	w.n += int64(len(p))
	return len(p), nil
}

func (w *inserter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	return write(w.dst, w.extra)
}

func write(w io.Writer, bs ...[]byte) error {
	for _, b := range bs {
		if len(b) == 0 {
			continue
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// errDelimiter stops a part whose new text would start a line with one
// of the enclosing multipart delimiters.
var errDelimiter = errors.New("unsubscribe: the edited part would hold a delimiter")

// lineGuard watches encoded output for a line that a multipart reader
// could take for a delimiter of an enclosing multipart: "--boundary" at
// the start of a line. A line that merely starts that way counts too.
type lineGuard struct {
	dashes [][]byte
	line   []byte // the start of the current line
	width  int    // the longest dash-boundary
}

func newLineGuard(boundaries []string) *lineGuard {
	g := &lineGuard{}
	for _, b := range boundaries {
		g.dashes = append(g.dashes, []byte("--"+b))
		g.width = max(g.width, len(b)+2)
	}
	return g
}

func (g *lineGuard) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := bytes.IndexByte(p, '\n')
		seg := p
		if k >= 0 {
			seg = p[:k]
		}
		if room := g.width - len(g.line); room > 0 {
			g.line = append(g.line, seg[:min(room, len(seg))]...)
		}
		if k < 0 {
			break
		}
		if err := g.Close(); err != nil {
			return 0, err
		}
		g.line = g.line[:0]
		p = p[k+1:]
	}
	return n, nil
}

// Close checks the last line.
func (g *lineGuard) Close() error {
	for _, d := range g.dashes {
		if bytes.HasPrefix(g.line, d) {
			return errDelimiter
		}
	}
	return nil
}

// wrapLines breaks base64 text into lines of 76 characters (RFC 2045).
type wrapLines struct {
	dst io.Writer
	nl  []byte
	col int
}

func (l *wrapLines) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if l.col == 76 {
			if err := write(l.dst, l.nl); err != nil {
				return 0, err
			}
			l.col = 0
		}
		k := min(76-l.col, len(p))
		if err := write(l.dst, p[:k]); err != nil {
			return 0, err
		}
		l.col += k
		p = p[k:]
	}
	return n, nil
}

// noSpace drops the line breaks and spaces base64 text is written with.
type noSpace struct{ r io.Reader }

func (s noSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
