// Package notices is the mail the proxy sends itself, through the
// configured upstream: the double opt-in confirmation and the link to the
// personal portal. Each is a small RFC 5322 message in Dutch or English,
// with a plain text part that reads well on its own and an HTML part. It
// holds the link, when the link stops working, who sends it and, for a
// confirmation, the purpose's description: nothing else of the subject's.
package notices

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/optin"
)

// Upstream is the mailer the notices go through; the relay's upstream
// (upstream.Sender) is one. Send's contract is that one: err when no
// recipient got the copy, rcptErrs (one per recipient) when the upstream
// took the copy for some and refused others.
type Upstream interface {
	Send(ctx context.Context, from string, to []string, msg io.WriterTo, opts *smtp.MailOptions) (rcptErrs []error, err error)
}

// Options configure New. Upstream, From and Hostname are required.
type Options struct {
	Upstream Upstream
	// From is the sender, a bare address (notices.from); it is also the
	// envelope sender, so that bounces reach whoever reads it.
	From string
	// ReplyTo, when set, is where replies go (notices.reply_to).
	ReplyTo string
	// Hostname is the right side of the Message-ID (smtp.hostname).
	Hostname string
	// Language is used when a call names none, or one without built-in
	// texts: "nl" (the default) or "en".
	Language string
	// Location is the time zone an expiry is written in; time.Local when
	// nil.
	Location *time.Location
	Now      func() time.Time
}

// Mailer builds and sends the notices; its callers log what they sent.
// Safe for concurrent use.
type Mailer struct {
	up       Upstream
	from     optin.Address
	replyTo  optin.Address
	hostname string
	lang     string
	loc      *time.Location
	now      func() time.Time
}

// New validates o and returns a Mailer.
func New(o Options) (*Mailer, error) {
	if o.Upstream == nil {
		return nil, errors.New("notices: no upstream")
	}
	if o.Hostname == "" {
		return nil, errors.New("notices: no hostname for the Message-ID")
	}
	from, err := optin.ParseAddress(o.From)
	if err != nil {
		return nil, fmt.Errorf("notices: from: %w", err)
	}
	m := &Mailer{up: o.Upstream, from: from, hostname: o.Hostname, lang: o.Language, loc: o.Location, now: o.Now}
	if o.ReplyTo != "" {
		if m.replyTo, err = optin.ParseAddress(o.ReplyTo); err != nil {
			return nil, fmt.Errorf("notices: reply-to: %w", err)
		}
	}
	if m.lang == "" {
		m.lang = Dutch
	}
	if _, ok := languages[m.lang]; !ok {
		return nil, fmt.Errorf("notices: language %q, want nl or en", m.lang)
	}
	if m.loc == nil {
		m.loc = time.Local
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// SendConfirmation mails to the double opt-in confirmation of purpose
// (its description, as the subject saw it): link confirms, and nothing
// happens if it is not followed before expires. lang is "nl" or "en"; ""
// or another takes the Mailer's language. The error is the upstream's
// (see Retryable), or one of building the message.
func (m *Mailer) SendConfirmation(ctx context.Context, to optin.Address, purpose, link string, expires time.Time, lang string) error {
	return m.send(ctx, to, kindConfirm, lang, fields{Purpose: purpose, Link: link, Expires: expires})
}

// SendPortalLink mails to a link to the personal portal that works until
// expires. lang and the error are as for SendConfirmation.
func (m *Mailer) SendPortalLink(ctx context.Context, to optin.Address, link string, expires time.Time, lang string) error {
	return m.send(ctx, to, kindPortal, lang, fields{Link: link, Expires: expires})
}

func (m *Mailer) send(ctx context.Context, to optin.Address, kind, lang string, f fields) error {
	if to.IsZero() {
		return fmt.Errorf("%w: no recipient", optin.ErrBadAddress)
	}
	if f.Link == "" {
		return errors.New("notices: no link")
	}
	raw, err := m.build(to, kind, m.language(lang), f)
	if err != nil {
		return err
	}
	rcpt, utf8 := wireAddress(to)
	from, fromUTF8 := wireAddress(m.from)
	opts := &smtp.MailOptions{UTF8: utf8 || fromUTF8, Size: int64(len(raw))}
	rcptErrs, err := m.up.Send(ctx, from, []string{rcpt}, bytesWriter(raw), opts)
	if err == nil && len(rcptErrs) > 0 && rcptErrs[0] != nil {
		err = rcptErrs[0]
	}
	if err != nil {
		return sendError(err)
	}
	return nil
}

// language is lang when it has texts, else the Mailer's.
func (m *Mailer) language(lang string) string {
	if _, ok := languages[lang]; ok {
		return lang
	}
	return m.lang
}

// wireAddress is a in the form an SMTP command carries it: the domain in
// ASCII, and whether the local part still needs SMTPUTF8 (RFC 6531).
func wireAddress(a optin.Address) (string, bool) {
	if a.NeedsSMTPUTF8() {
		return a.String(), true
	}
	return a.Local() + "@" + a.ASCIIDomain(), false
}

type bytesWriter []byte

func (b bytesWriter) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}
