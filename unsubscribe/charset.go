package unsubscribe

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// charset is a part's character set, as far as the injector needs it.
// The injector looks for the placeholder and </body> in the part's own
// bytes, so it handles only charsets in which ASCII text is written as
// ASCII bytes and no ASCII byte means anything else.
type charset struct {
	enc  encoding.Encoding // nil for UTF-8
	utf8 bool
}

// probe is what must come out of an encoder unchanged.
const probe = "</body>" + Placeholder + "\r\n"

// lookupCharset finds the charset named by a Content-Type's charset
// parameter ("" is US-ASCII, the MIME default). ok is false for a charset
// it does not know or cannot search safely: UTF-16 and EBCDIC write ASCII
// differently, and the ISO-2022 family, HZ and UTF-7 shift into states in
// which ASCII bytes stand for other characters.
func lookupCharset(name string) (cs charset, ok bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	switch name {
	case "utf-8", "utf8":
		return charset{utf8: true}, true
	case "":
		name = "us-ascii"
	}
	if strings.Contains(name, "2022") || strings.HasPrefix(name, "hz") || strings.Contains(name, "utf-7") {
		return charset{}, false
	}
	// IANA's names first: HTML's index reads ISO-8859-1 and US-ASCII as
	// Windows-1252, which would put bytes into the part that a reader of
	// ISO-8859-1 sees as control characters.
	enc, err := ianaindex.MIME.Encoding(name)
	if err != nil || enc == nil {
		enc, err = htmlindex.Get(name)
	}
	if err != nil || enc == nil || enc == encoding.Replacement {
		return charset{}, false
	}
	if b, err := enc.NewEncoder().Bytes([]byte(probe)); err != nil || !bytes.Equal(b, []byte(probe)) {
		return charset{}, false
	}
	return charset{enc: enc}, true
}

// encode writes s in the charset. HTML can always be written: what the
// charset lacks becomes a character reference. Text the charset cannot
// hold gives ok false.
func (cs charset) encode(s string, isHTML bool) (b []byte, ok bool) {
	if cs.utf8 {
		return []byte(s), utf8.ValidString(s)
	}
	e := cs.enc.NewEncoder()
	if isHTML {
		e = encoding.HTMLEscapeUnsupported(e)
	}
	b, err := e.Bytes([]byte(s))
	return b, err == nil
}

// asciiHTML writes every non-ASCII character of s as a character reference.
func asciiHTML(s string) []byte {
	var b bytes.Buffer
	for _, r := range s {
		if r < utf8.RuneSelf {
			b.WriteByte(byte(r))
			continue
		}
		b.WriteString("&#")
		b.WriteString(strconv.Itoa(int(r)))
		b.WriteByte(';')
	}
	return b.Bytes()
}

// isASCII reports whether b holds 7-bit bytes only.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
