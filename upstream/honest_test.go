package upstream_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"optinproxy/upstream"
)

// lacker is how smtpproxy, which does not import this package, learns
// which extension the upstream lacks.
type lacker interface{ Lacks() string }

func lacks(err error) string {
	var l lacker
	if errors.As(err, &l) {
		return l.Lacks()
	}
	return ""
}

// A message that needs an extension the upstream does not offer fails
// with an error naming it (Lacks), before MAIL.
func TestMissingExtensionIsNamed(t *testing.T) {
	m := startMailer(t, plainMailer, nil, nil)
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr})
	for _, tc := range []struct {
		opts *smtp.MailOptions
		want string
	}{
		{&smtp.MailOptions{UTF8: true}, "SMTPUTF8"},
		{&smtp.MailOptions{RequireTLS: true}, "REQUIRETLS"},
	} {
		_, err := s.Send(t.Context(), "crm@shop.example", []string{"jan@example.com"}, testMsg, tc.opts)
		if got := lacks(err); got != tc.want {
			t.Errorf("%+v: error %v lacks %q, want %q", tc.opts, err, got, tc.want)
		}
		if isSMTPError(err) {
			t.Errorf("%+v: error %v is an SMTP reply", tc.opts, err)
		}
		if tc.want == "SMTPUTF8" && !errors.Is(err, upstream.ErrNoSMTPUTF8) {
			t.Errorf("%v is not ErrNoSMTPUTF8", err)
		}
	}
	if n := m.mailCount(); n != 0 {
		t.Errorf("server saw %d MAIL commands", n)
	}
}

// starttls: required against an upstream without STARTTLS names what it
// lacks, rather than looking like an unreachable upstream.
func TestRequiredStartTLSLacksIsNamed(t *testing.T) {
	m := startMailer(t, plainMailer, nil, nil)
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, StartTLS: "required"})
	_, err := sendOne(s)
	if got := lacks(err); got != "STARTTLS" {
		t.Errorf("error %v lacks %q, want STARTTLS", err, got)
	}
}

// A reply out of its place (DATA answered with anything but 354, a 3xx
// to RCPT, a code outside 2xx-5xx) is a broken conversation, not the
// upstream's verdict: an error that is no SMTP reply, and no byte of the
// message goes out.
func TestReplyOutOfPlace(t *testing.T) {
	for _, tc := range []struct{ at, reply string }{
		{"DATA", "250 2.0.0 sure"},
		{"DATA", "220 hello again"},
		{"RCPT", "354 go on"},
		{"MAIL", "600 6.0.0 odd"},
		{"RCPT", "199 early"},
	} {
		var mu sync.Mutex
		var after []string // commands after the odd reply
		odd := false
		srv := startLockstep(t, func(_ int, cmd string) string {
			mu.Lock()
			defer mu.Unlock()
			if odd && cmd != "QUIT" && cmd != "RSET" && cmd != "EOF" {
				after = append(after, cmd)
			}
			if strings.HasPrefix(cmd, tc.at) {
				odd = true
				return tc.reply
			}
			return ""
		})
		s := newSender(t, upstream.Options{URL: "smtp://" + srv.addr})
		rcptErrs, err := sendOne(s)
		if err == nil {
			t.Errorf("%s %q: send succeeded", tc.at, tc.reply)
			continue
		}
		if isSMTPError(err) || rcptErrs != nil {
			t.Errorf("%s %q: %v, %v: an SMTP reply", tc.at, tc.reply, rcptErrs, err)
		}
		var md interface{ MaybeDelivered() bool }
		if errors.As(err, &md) {
			t.Errorf("%s %q: %v says maybe delivered", tc.at, tc.reply, err)
		}
		mu.Lock()
		if len(after) > 0 || len(srv.messages()) > 0 {
			t.Errorf("%s %q: the upstream got %q after it", tc.at, tc.reply, after)
		}
		mu.Unlock()
	}
}
