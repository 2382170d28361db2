package dkim

import (
	"bytes"
	"io"
	"mime"
	"net/mail"
	"strings"

	"golang.org/x/net/idna"
)

// field is one header field of a message: its name and its bytes, from
// the first character of the name to the end of its last line.
type field struct {
	name       string
	start, end int
}

// header is what split finds of a message.
type header struct {
	fields []field
	body   int  // where the body starts; len(msg) when there is none
	blank  bool // whether the blank line that ends the header is there
	// malformed is set when a line of the header is no field: it starts
	// with white space before any field, or has no name and colon.
	// Signing such a header is not safe: a field put before it would
	// absorb the stray line.
	malformed bool
}

// split finds the header fields of msg and where its body starts. A
// message without the blank line that ends the header is all header.
func split(msg []byte) header {
	var h header
	pos := 0
	for pos < len(msg) {
		end := len(msg)
		if i := bytes.IndexByte(msg[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := msg[pos:end]
		switch {
		case string(line) == "\r\n" || string(line) == "\n":
			h.body, h.blank = end, true
			return h
		case line[0] == ' ' || line[0] == '\t':
			if len(h.fields) == 0 {
				h.malformed = true
				h.fields = append(h.fields, field{start: pos})
			}
			h.fields[len(h.fields)-1].end = end
		default:
			name, _, colon := bytes.Cut(line, []byte(":"))
			name = bytes.TrimSpace(name)
			if !colon || len(name) == 0 {
				h.malformed = true
			}
			h.fields = append(h.fields, field{name: string(name), start: pos, end: end})
		}
		pos = end
	}
	h.body = len(msg)
	return h
}

// value returns a field's unfolded value, without its name and colon.
func (f field) value(msg []byte) string {
	raw := msg[f.start:f.end]
	if i := bytes.IndexByte(raw, ':'); i >= 0 {
		raw = raw[i+1:]
	} else {
		raw = nil
	}
	raw = bytes.TrimSpace(raw)
	if bytes.IndexByte(raw, '\n') < 0 {
		return string(raw)
	}
	// Unfolding removes the line breaks; the whitespace after them stays.
	v := make([]byte, 0, len(raw))
	for len(raw) > 0 {
		line, rest, _ := bytes.Cut(raw, []byte("\n"))
		v = append(v, bytes.TrimSuffix(line, []byte("\r"))...)
		raw = rest
	}
	return string(v)
}

// fromDomain returns the domain of the message's author: the one mailbox
// of its one From field, lower case, in its ASCII (xn--) form. A message
// with no From, several, or several mailboxes in it has none: whose key
// would sign it is not clear, and receivers applying DMARC reject such
// messages anyway.
func fromDomain(msg []byte, fields []field) string {
	var from *field
	for i := range fields {
		if strings.EqualFold(fields[i].name, "From") {
			if from != nil {
				return ""
			}
			from = &fields[i]
		}
	}
	if from == nil {
		return ""
	}
	addr := mailbox(from.value(msg))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	domain := strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
	if ascii, err := idna.Lookup.ToASCII(domain); err == nil {
		domain = ascii
	}
	return domain
}

// lenientWords decodes no display name: only the address matters, and an
// unknown charset in the name must not hide it.
var lenientWords = &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}

// mailbox returns the address of a From value holding one mailbox, or "".
// When the value does not parse strictly (a display name with an
// unquoted dot is common), the one <...> in it is taken.
func mailbox(v string) string {
	p := mail.AddressParser{WordDecoder: lenientWords}
	if list, err := p.ParseList(v); err == nil {
		if len(list) != 1 {
			return ""
		}
		return list[0].Address
	}
	open := strings.IndexByte(v, '<')
	if open < 0 || strings.Count(v, "<") != 1 {
		return ""
	}
	addr, _, ok := strings.Cut(v[open+1:], ">")
	if !ok || strings.ContainsAny(addr, ",;") {
		return ""
	}
	return strings.TrimSpace(addr)
}
