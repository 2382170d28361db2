package unsubscribe

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"html"
	"io"
	"mime/quotedprintable"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-message/textproto"
)

// transfer is a part's Content-Transfer-Encoding.
type transfer struct {
	kind     int
	sevenBit bool // the part must stay 7-bit
}

const (
	identity = iota
	quotedPrintable
	base64Kind
)

func transferOf(v string) (transfer, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "7bit":
		return transfer{identity, true}, true
	case "8bit", "binary":
		return transfer{identity, false}, true
	case "quoted-printable":
		return transfer{kind: quotedPrintable}, true
	case "base64":
		return transfer{kind: base64Kind}, true
	}
	return transfer{}, false
}

var chunks = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// decode writes the decoded content of raw to w, in pieces of at most
// 32 KiB (all at once when there is nothing to decode).
func (t transfer) decode(raw []byte, w io.Writer) error {
	var r io.Reader
	switch t.kind {
	case identity:
		_, err := w.Write(raw)
		return err
	case quotedPrintable:
		r = quotedprintable.NewReader(bytes.NewReader(raw))
	default:
		r = base64.NewDecoder(base64.StdEncoding, noSpace{bytes.NewReader(raw)})
	}
	buf := chunks.Get().(*[32 << 10]byte)
	defer chunks.Put(buf)
	_, err := io.CopyBuffer(w, struct{ io.Reader }{r}, buf[:])
	return err
}

// encoder returns the writer that encodes into dst and the function that
// finishes the encoding. A base64 part ends with a line break when raw
// did, so that the part keeps its shape.
func (t transfer) encoder(dst io.Writer, raw []byte) (io.Writer, func() error) {
	switch t.kind {
	case quotedPrintable:
		q := quotedprintable.NewWriter(dst)
		return q, q.Close
	case base64Kind:
		nl := []byte(rawNL(raw))
		l := &wrapLines{dst: dst, nl: nl}
		e := base64.NewEncoder(base64.StdEncoding, l)
		return e, func() error {
			if err := e.Close(); err != nil {
				return err
			}
			if bytes.HasSuffix(raw, []byte("\n")) {
				return write(dst, nl)
			}
			return nil
		}
	}
	return dst, func() error { return nil }
}

// rawNL is the line ending raw uses first, else CRLF.
func rawNL(raw []byte) string {
	if k := bytes.IndexByte(raw, '\n'); k == 0 || k > 0 && raw[k-1] != '\r' {
		return "\n"
	}
	return "\r\n"
}

// edit is the change to one text part: either every placeholder replaced
// by link, or extra inserted at offset at of the decoded content.
type edit struct {
	link  []byte
	at    int64
	extra []byte
}

// text writes a text part's body with the link put in. A part it cannot
// read, or whose edit would make a line look like a delimiter of an
// enclosing multipart, is written as it came.
func (in *injector) text(h textproto.Header, isHTML bool, charsetName string, body []byte) error {
	cs, csOK := lookupCharset(charsetName)
	te, teOK := transferOf(h.Get("Content-Transfer-Encoding"))
	if !csOK || !teOK {
		return in.skip(body)
	}
	s := newScan(in.bounds)
	if err := te.decode(body, s); err != nil {
		return in.skip(body)
	}
	e := in.plan(s, isHTML, cs, te)
	if in.mayFormDelimiter(s, te, e) {
		if err := in.emit(newLineGuard(in.bounds), body, te, e); err != nil {
			return in.skip(body)
		}
	}
	dst := in.w
	var bw *bufio.Writer
	if te.kind != identity {
		// The encoders write a line at a time.
		bw = bufio.NewWriterSize(in.w, 4<<10)
		dst = bw
	}
	if err := in.emit(dst, body, te, e); err != nil {
		return err
	}
	in.out.Linked++
	if bw != nil {
		return bw.Flush()
	}
	return nil
}

// mayFormDelimiter reports whether the edited part could hold a line
// starting with an enclosing delimiter, so that it must be checked before
// it is written. Base64 has no "-". Otherwise new lines come only from the
// footer or the link, and in quoted-printable also from re-wrapping the
// text: a boundary without "=" then appears only if the text holds it,
// and one whose every "=" is followed by something other than a hex digit
// or a line break never appears.
func (in *injector) mayFormDelimiter(s *scan, te transfer, e edit) bool {
	if te.kind == base64Kind {
		return false
	}
	for _, b := range in.bounds {
		if bytes.Contains(e.extra, []byte(b)) || bytes.Contains(e.link, []byte(b)) {
			return true
		}
		if te.kind == quotedPrintable && (s.hasBound || qpCanWrite(b)) {
			return true
		}
	}
	return false
}

// qpCanWrite reports whether a quoted-printable encoder could write the
// "=" signs of b: it writes "=" only before two hex digits or a line break.
func qpCanWrite(b string) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '=' {
			continue
		}
		if i+1 == len(b) || isHex(b[i+1]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// emit writes body with e applied, encoded as te, to dst.
func (in *injector) emit(dst io.Writer, body []byte, te transfer, e edit) error {
	enc, finish := te.encoder(dst, body)
	var ed interface {
		io.Writer
		Close() error
	}
	if e.link != nil {
		ed = &replacer{dst: enc, link: e.link}
	} else {
		ed = &inserter{dst: enc, at: e.at, extra: e.extra}
	}
	if err := te.decode(body, ed); err != nil {
		return err
	}
	if err := ed.Close(); err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	if g, ok := dst.(*lineGuard); ok {
		return g.Close()
	}
	return nil
}

// plan decides a text part's edit from its scan: the placeholders
// replaced where the part has them, else the footer, in the part's
// charset, before the last </body> of HTML or at the end.
func (in *injector) plan(s *scan, isHTML bool, cs charset, te transfer) edit {
	url := in.c.URL
	if s.placeholders > 0 {
		if isHTML {
			url = html.EscapeString(url)
		}
		return edit{link: []byte(url)}
	}
	tmpl := in.footer.Text
	if isHTML {
		tmpl = in.footer.HTML
	}
	filled := fill(tmpl, url, isHTML)
	b, ok := cs.encode(filled, isHTML)
	if ok && te.sevenBit && !isASCII(b) {
		ok = false
	}
	if !ok && isHTML {
		b = asciiHTML(filled)
	} else if !ok {
		b = []byte(fill(asciiText(in.c.Lang), url, false))
	}
	nl := []byte(s.nl())
	b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), nl)

	e := edit{at: s.n}
	endsNL := s.last == '\n'
	switch {
	case s.n == 0:
		e.extra = slices.Concat(b, nl)
	case isHTML && s.bodyEnd >= 0:
		e.at = s.bodyEnd
		e.extra = slices.Concat(nl, b, nl)
	case isHTML && endsNL:
		e.extra = slices.Concat(b, nl)
	case isHTML:
		e.extra = slices.Concat(nl, b)
	case endsNL:
		e.extra = slices.Concat(nl, b, nl)
	default:
		e.extra = slices.Concat(nl, nl, b)
	}
	return e
}
