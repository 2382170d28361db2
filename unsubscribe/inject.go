package unsubscribe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// ErrCopy means a Copy's values cannot go into a message.
var ErrCopy = errors.New("unsubscribe: bad copy")

// Copy is what one recipient's copy of a message gets.
type Copy struct {
	// URL is the recipient's unsubscribe page, for List-Unsubscribe and
	// the footer.
	URL string
	// Mailto, when set, is the unsubscribe address (without "mailto:")
	// offered in List-Unsubscribe beside the URL.
	Mailto string
	// ListID, when set, replaces the message's List-Id (see ListID).
	ListID string
	// Lang chooses the footer; an unknown language gets English.
	Lang string
	// Footer puts the link into the text body parts; without it the body
	// is written as it came and only the header changes.
	Footer bool
	// Templates are the footers; nil means the built-in ones.
	Templates *Templates
}

// Outcome tells what WriteCopy did to the body.
type Outcome struct {
	// Linked counts the text parts that got the link, as a footer or in
	// place of the placeholder; the body changed when it is not 0.
	Linked int
	// Skipped counts the parts that could have had the link but were
	// written as they came because they could not be read: broken
	// multipart boundaries, an unknown transfer encoding or charset,
	// undecodable base64.
	Skipped int
}

// maxDepth bounds the nesting of multiparts the injector walks into;
// deeper ones are written as they came.
const maxDepth = 32

// WriteCopy writes one recipient's copy of a message to w: the header h
// with the list headers of c, then the body with the link put into every
// text/plain and text/html part when c.Footer is set. h is the
// recipient's own header and is changed; body is shared and only read.
// The copy is streamed: apart from a few small buffers, nothing of it is
// held in memory. Attachments, non-text parts and signed or encrypted
// subtrees are written byte for byte; so is a part that cannot be read,
// which Outcome counts. An error is ErrCopy (nothing written) or w's.
// Safe for concurrent use with the same body.
func WriteCopy(w io.Writer, h textproto.Header, body []byte, c Copy) (Outcome, error) {
	if err := c.check(); err != nil {
		return Outcome{}, err
	}
	setHeaders(&h, c)
	if err := textproto.WriteHeader(w, h); err != nil {
		return Outcome{}, err
	}
	if !c.Footer {
		_, err := w.Write(body)
		return Outcome{}, err
	}
	in := &injector{w: w, c: c, footer: c.Templates.footer(c.Lang)}
	err := in.entity(h, body, "text/plain", 0)
	return in.out, err
}

// injector walks one copy's MIME tree, writing as it goes.
type injector struct {
	w      io.Writer
	c      Copy
	footer Footer
	out    Outcome
	bounds []string // of the enclosing multiparts
}

func (in *injector) raw(b []byte) error {
	_, err := in.w.Write(b)
	return err
}

func (in *injector) skip(b []byte) error {
	in.out.Skipped++
	return in.raw(b)
}

// entity writes the body of an entity whose header h is already written.
// defType is the content type when h names none.
func (in *injector) entity(h textproto.Header, body []byte, defType string, depth int) error {
	typ, params, err := mediaType(h, defType)
	switch {
	case err != nil:
		return in.skip(body)
	case typ == "multipart/signed" || typ == "multipart/encrypted":
		// Any change would break the signature or is impossible.
		return in.raw(body)
	case strings.HasPrefix(typ, "multipart/"):
		if depth >= maxDepth {
			return in.skip(body)
		}
		return in.multipart(body, params["boundary"], typ == "multipart/digest", depth)
	case (typ == "text/plain" || typ == "text/html") && !attachment(h, params):
		return in.text(h, typ == "text/html", params["charset"], body)
	default:
		return in.raw(body)
	}
}

func mediaType(h textproto.Header, defType string) (string, map[string]string, error) {
	v := h.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		return defType, map[string]string{}, nil
	}
	return mime.ParseMediaType(v)
}

// attachment reports whether a text part is a file rather than the
// message's text: marked as attachment, or named. A disposition that
// cannot be read counts as attachment, to be left alone.
func attachment(h textproto.Header, ctParams map[string]string) bool {
	if ctParams["name"] != "" {
		return true
	}
	v := h.Get("Content-Disposition")
	if strings.TrimSpace(v) == "" {
		return false
	}
	disp, params, err := mime.ParseMediaType(v)
	return err != nil || disp == "attachment" || params["filename"] != ""
}

// multipart writes a multipart body: preamble, delimiters and epilogue as
// they came, each part through part. A body whose delimiters cannot be
// found is written as it came.
func (in *injector) multipart(body []byte, boundary string, digest bool, depth int) error {
	parts, ok := splitParts(body, boundary)
	if !ok {
		return in.skip(body)
	}
	defType := "text/plain"
	if digest {
		defType = "message/rfc822"
	}
	in.bounds = append(in.bounds, boundary)
	defer func() { in.bounds = in.bounds[:len(in.bounds)-1] }()
	at := 0
	for _, p := range parts {
		if err := in.raw(body[at:p.start]); err != nil {
			return err
		}
		if err := in.part(body[p.start:p.end], defType, depth+1); err != nil {
			return err
		}
		at = p.end
	}
	return in.raw(body[at:])
}

// part writes one body part: its header as it came, then its body.
func (in *injector) part(b []byte, defType string, depth int) error {
	r := bytes.NewReader(b)
	br := bufio.NewReader(r)
	h, err := textproto.ReadHeader(br)
	n := len(b) - r.Len() - br.Buffered()
	if err != nil || !endsWithBlankLine(b[:n]) {
		return in.skip(b)
	}
	if err := in.raw(b[:n]); err != nil {
		return err
	}
	return in.entity(h, b[n:], defType, depth)
}

// endsWithBlankLine reports whether a part's header ends with the empty
// line that separates it from the body; without it the part is all
// header, and text added to it would become header.
func endsWithBlankLine(h []byte) bool {
	switch {
	case string(h) == "\n" || string(h) == "\r\n":
		return true
	default:
		return bytes.HasSuffix(h, []byte("\n\n")) || bytes.HasSuffix(h, []byte("\n\r\n"))
	}
}
