package unsubscribe

import (
	"fmt"
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// oneClick is the List-Unsubscribe-Post value of RFC 8058.
const oneClick = "List-Unsubscribe=One-Click"

// setHeaders puts the list headers of c into h, replacing any the sender
// put in: a CRM's own List-Unsubscribe would lead around the ledger, and a
// List-Id is what mailbox providers group unsubscribes by, so it follows
// the purpose the link withdraws. New fields go on top of the header.
func setHeaders(h *textproto.Header, c Copy) {
	h.Del("List-Unsubscribe")
	h.Del("List-Unsubscribe-Post")
	if c.ListID != "" {
		h.Del("List-Id")
		h.Add("List-Id", c.ListID)
	}
	h.Add("List-Unsubscribe-Post", oneClick)
	v := "<" + c.URL + ">"
	if c.Mailto != "" {
		v += ", <mailto:" + c.Mailto + ">"
	}
	h.Add("List-Unsubscribe", v)
}

// ListID makes the List-Id of a purpose (RFC 2919): its description as
// the display phrase and "<purpose.host>" as the identifier, the purpose
// name and host reduced to the letters, digits and hyphens a list-id may
// hold. host is the public host name of the proxy, which the list owner
// controls; the result stays the same for every message of the purpose.
func ListID(purpose, description, host string) string {
	id := label(purpose) + "." + hostLabel(host)
	phrase := strings.Join(strings.FieldsFunc(description, func(r rune) bool { return r < ' ' || r == 0x7f }), " ")
	phrase = strings.TrimSpace(phrase)
	if phrase == "" {
		return "<" + id + ">"
	}
	return quotePhrase(phrase) + " <" + id + ">"
}

func label(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	if l := strings.Trim(b.String(), "-"); l != "" {
		return l
	}
	return "list"
}

// hostLabel keeps the dot-separated labels of a host name; an address
// literal or an empty host gives "invalid", the name reserved for that.
func hostLabel(host string) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || strings.ContainsAny(host, ":[]") {
		return "invalid"
	}
	parts := strings.Split(host, ".")
	for i, p := range parts {
		parts[i] = label(p)
	}
	return strings.Join(parts, ".")
}

// quotePhrase writes a display phrase as a quoted string, or as an
// encoded word when it is not ASCII.
func quotePhrase(s string) string {
	for _, r := range s {
		if r > 0x7e {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// check refuses a Copy whose values would break the header they go into.
func (c Copy) check() error {
	if c.URL == "" {
		return fmt.Errorf("%w: no URL", ErrCopy)
	}
	if !headerSafe(c.URL, " <>,") {
		return fmt.Errorf("%w: the URL may hold printable ASCII only, without spaces, commas or angle brackets", ErrCopy)
	}
	if c.Mailto != "" && (!headerSafe(c.Mailto, " <>,?") || !strings.Contains(c.Mailto, "@")) {
		return fmt.Errorf("%w: the mailto is not an address", ErrCopy)
	}
	if !headerSafe(c.ListID, "") {
		return fmt.Errorf("%w: the List-Id may hold printable ASCII only", ErrCopy)
	}
	return nil
}

func headerSafe(s, forbidden string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > 0x7e || strings.IndexByte(forbidden, s[i]) >= 0 {
			return false
		}
	}
	return true
}
