package smtpproxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-message/textproto"
)

// message is a received message: its parsed header, which the proxy
// changes, and its body, which it passes on as received. Fields added to
// the header are written above the received ones; received fields are
// written byte for byte as they came.
type message struct {
	header textproto.Header
	body   []byte
	// id is the Message-ID, the received one or the one added.
	id string
	// key identifies the message across a client's retries: its received
	// Message-ID, or a hash of the message as received when it had none.
	key string
	// size is the message's size as received; copySize the largest copy
	// of it held so far (see copyHint).
	size     int
	copySize atomic.Int64
}

// headerReaders holds the readers parseMessage reads headers with:
// go-message reads only from a *bufio.Reader, and one of its own per
// message would be 4 KiB for a message already held whole. No header
// field keeps a slice of the reader's buffer.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// parseMessage splits raw into header and body. raw must stay unchanged
// while the message is used: the body is not copied. An error is a
// headerError.
func parseMessage(raw []byte) (*message, error) {
	r := bytes.NewReader(raw)
	br := headerReaders.Get().(*bufio.Reader)
	br.Reset(r)
	h, err := textproto.ReadHeader(br)
	// The body is what neither reader has handed out yet.
	body := raw[len(raw)-r.Len()-br.Buffered():]
	br.Reset(nil)
	headerReaders.Put(br)
	if err != nil {
		return nil, headerFault(err)
	}
	// go-message skips a field with an empty name; relayed, it would
	// vanish from a message the proxy claims to pass on as received.
	if hdr := raw[:len(raw)-len(body)]; bytes.HasPrefix(hdr, []byte(":")) || bytes.Contains(hdr, []byte("\n:")) {
		return nil, headerError{"a field without a name"}
	}
	m := &message{header: h, body: body, size: len(raw)}
	if id := strings.TrimSpace(h.Get("Message-Id")); id != "" {
		m.id = id
		m.key = "mid:" + id
	} else {
		sum := sha256.Sum256(raw)
		m.key = "sha256:" + hex.EncodeToString(sum[:])
	}
	return m, nil
}

// headerError says what kind of fault made a header unreadable, and no
// more: go-message's errors quote the offending line, which may hold an
// address or other content of the message, and this one is logged.
type headerError struct{ kind string }

func (e headerError) Error() string { return "malformed header: " + e.kind }

// headerFault turns an error of textproto.ReadHeader into a headerError,
// keeping none of its text.
func headerFault(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return headerError{"the message ends inside its header"}
	case strings.HasPrefix(msg, "message: malformed MIME header initial line"):
		return headerError{"it starts with a continuation line"}
	case strings.HasPrefix(msg, "message: malformed MIME header line"):
		return headerError{"a line without a colon"}
	case strings.HasPrefix(msg, "message: malformed MIME header key"):
		return headerError{"a field name with characters a field name cannot have"}
	}
	return headerError{"unreadable"}
}

// WriteTo writes the header and the body.
func (m *message) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	if err := textproto.WriteHeader(cw, m.header); err != nil {
		return cw.n, err
	}
	_, err := cw.Write(m.body)
	return cw.n, err
}

// sizeOf is the number of bytes w writes, for MAIL FROM's SIZE=, or 0
// (no SIZE=) for a personal copy, which would have to be built once more
// only to be counted.
func sizeOf(w io.WriterTo) int64 {
	switch w := w.(type) {
	case *message:
		n, _ := w.WriteTo(io.Discard)
		return n
	case bytesWriter:
		return int64(len(w))
	}
	return 0
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// newID returns a random identifier for the queue id and Message-ID.
func newID() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// stamp adds the trace header of RFC 5321 section 4.4 and, when the
// message has none, a Message-ID (RFC 5322 section 3.6.4).
func (m *message) stamp(qid, hostname, helo, remote, protocol string, now time.Time) {
	if m.id == "" {
		m.id = "<" + qid + "@" + hostname + ">"
		addFormatted(&m.header, "Message-Id", m.id)
	}
	from := "unknown"
	if validHelo(helo) {
		from = helo
	}
	addFormatted(&m.header, "Received", fmt.Sprintf("from %s ([%s]) by %s (optinproxy) with %s id %s; %s",
		from, remote, hostname, protocol, qid, now.Format(time.RFC1123Z)))
}

// addFormatted adds a field to h as go-message formats (and folds) it,
// once: a field added by value is formatted anew each time the header
// is written, which is once per copy.
func addFormatted(h *textproto.Header, k, v string) {
	var one textproto.Header
	one.Add(k, v)
	raw, err := one.Raw(k)
	if err != nil { // a value the proxy made holds no CR or LF
		h.Add(k, v)
		return
	}
	h.AddRaw(raw)
}

// validHelo reports whether a HELO name may go into Received:: a domain
// of LDH labels (RFC 5321 section 4.1.2) or an address literal. Anything
// else is the client's own text, which could carry control characters or
// a CR that starts a header field of its own.
func validHelo(name string) bool {
	if lit, ok := strings.CutPrefix(name, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		if v6, isV6 := strings.CutPrefix(lit, "IPv6:"); isV6 {
			a, err := netip.ParseAddr(v6)
			return ok && err == nil && a.Is6()
		}
		a, err := netip.ParseAddr(lit)
		return ok && err == nil && a.Is4()
	}
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if !ldhLabel(label) {
			return false
		}
	}
	return true
}

func ldhLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// fromDomain is the domain of the message's From: field, lowercased: the
// domain mailbox providers hold to account for complaints. The envelope
// sender's stands in when From: names no single readable address.
func (tx *transaction) fromDomain() string {
	if list, err := mail.ParseAddressList(tx.msg.header.Get("From")); err == nil && len(list) == 1 {
		if i := strings.LastIndexByte(list[0].Address, '@'); i >= 0 {
			return strings.ToLower(list[0].Address[i+1:])
		}
	}
	if i := strings.LastIndexByte(tx.from, '@'); i >= 0 {
		return strings.ToLower(tx.from[i+1:])
	}
	return ""
}
