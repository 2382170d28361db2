package notices

import (
	"bytes"
	"fmt"
	"io"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"optinproxy/optin"
)

// Kinds of notice, as the templates and the log name them.
const (
	kindConfirm = "confirm"
	kindPortal  = "portal"
)

// fields are what a notice says; Purpose only in a confirmation.
type fields struct {
	Purpose string
	Link    string
	Expires time.Time
}

// view is what the templates see.
type view struct {
	Purpose string
	Link    string
	// Expires is the expiry written out in the notice's language.
	Expires string
	// Sender is the From address: the mail names who sends it.
	Sender string
}

// build writes the whole message: an RFC 5322 header and a
// multipart/alternative body with a text/plain and a text/html part,
// both UTF-8 and quoted-printable (go-message's default for text), so
// that no line is too long for SMTP whatever the link's length.
func (m *Mailer) build(to optin.Address, kind, lang string, f fields) ([]byte, error) {
	v := view{Purpose: f.Purpose, Link: f.Link, Expires: formatTime(f.Expires.In(m.loc), lang), Sender: m.from.String()}
	subject, text, html, err := render(kind, lang, v)
	if err != nil {
		return nil, err
	}
	// go-message writes the fields last set first: they are set from the
	// bottom up, so that the header reads From, To, Subject, Date.
	var h mail.Header
	h.Set("Content-Language", lang)
	// RFC 3834 section 5: mail no person wrote; auto-responders must not
	// answer it.
	h.Set("Auto-Submitted", "auto-generated")
	if err := h.GenerateMessageIDWithHostname(m.hostname); err != nil {
		return nil, fmt.Errorf("notices: message id: %w", err)
	}
	h.SetDate(m.now().In(m.loc))
	h.SetSubject(subject)
	// Addresses appear as the envelope has them: the domain in ASCII, so
	// that the header needs SMTPUTF8 (RFC 6532) only when the envelope
	// does.
	h.SetAddressList("To", headerAddress(to))
	if !m.replyTo.IsZero() {
		h.SetAddressList("Reply-To", headerAddress(m.replyTo))
	}
	h.SetAddressList("From", headerAddress(m.from))

	var b bytes.Buffer
	w, err := mail.CreateInlineWriter(&b, h)
	if err != nil {
		return nil, fmt.Errorf("notices: %w", err)
	}
	for _, part := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", html}} {
		var ph mail.InlineHeader
		ph.SetContentType(part.typ, map[string]string{"charset": "utf-8"})
		pw, err := w.CreatePart(ph)
		if err != nil {
			return nil, fmt.Errorf("notices: %w", err)
		}
		if _, err := io.WriteString(pw, crlf(part.body)); err != nil {
			return nil, fmt.Errorf("notices: %w", err)
		}
		if err := pw.Close(); err != nil {
			return nil, fmt.Errorf("notices: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("notices: %w", err)
	}
	return b.Bytes(), nil
}

func headerAddress(a optin.Address) []*netmail.Address {
	s, _ := wireAddress(a)
	return []*netmail.Address{{Address: s}}
}

// crlf gives a body the line ends of mail: quoted-printable keeps CRLF
// as a hard line break, and a bare LF would be rewritten on the way.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}
