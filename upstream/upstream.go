// Package upstream hands relayed copies to the mailer behind the proxy: an
// SMTP server (smtp://, smtps://) through a small pool of reused
// connections, or a folder of .eml files (file://). Its users declare their
// own narrow interface (smtpproxy.Upstream); only cmd and tests import it.
package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// Sender is what both upstreams do. Send delivers one copy of a message to
// the recipients in to. A non-nil err means no recipient got the copy:
// an *smtp.SMTPError when the upstream answered, any other error when it
// could not be reached or the conversation broke. Two kinds of the latter
// carry a method, for callers that do not import this package:
// MaybeDelivered() bool when the reply to the whole message was lost (the
// copy may have been delivered), and Lacks() string naming the extension
// ("STARTTLS", "SMTPUTF8", "REQUIRETLS") the upstream does not offer and
// the message or the configuration needs. With err nil, rcptErrs (nil or
// one entry per recipient, in order) names the recipients the upstream
// refused at RCPT while it accepted the copy for the others.
type Sender interface {
	Send(ctx context.Context, from string, to []string, msg io.WriterTo, opts *smtp.MailOptions) (rcptErrs []error, err error)
	// Ping reports whether the upstream can take mail now (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// Options configure New. URL is the only required field.
type Options struct {
	URL      string
	Username string
	Password string
	// StartTLS is "opportunistic" (default) or "required" for smtp://.
	StartTLS string
	// TLSConfig overrides the client TLS settings (tests pin a CA here);
	// ServerName is filled from the URL when empty.
	TLSConfig *tls.Config
	// LocalName is said in EHLO.
	LocalName string
	// Timeout bounds dialing, and then each command and its reply and
	// each buffer of a message written; default one minute.
	Timeout time.Duration
	// DotTimeout bounds the wait for the reply to a message's final dot,
	// when the upstream may be scanning it; default ten minutes (RFC
	// 5321 section 4.5.3.2.6), never shorter than Timeout.
	DotTimeout time.Duration
	// PoolSize bounds the connections open to an SMTP upstream at once,
	// busy or idle; a Send beyond it waits for one. Default 20.
	PoolSize int
	// MaxIdle is how long an idle connection is kept; default 30s, below
	// the usual 60s+ server idle timeouts so a pooled one is rarely stale.
	MaxIdle time.Duration
	Logger  *slog.Logger
}

// ErrBadURL is returned by New for an upstream URL it cannot use.
var ErrBadURL = errors.New("upstream: bad url")

// New returns the Sender for opts.URL.
func New(opts Options) (Sender, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	switch u.Scheme {
	case "file":
		return NewFile(FilePath(u))
	case "smtp", "smtps":
		return NewSMTP(u, opts)
	default:
		return nil, fmt.Errorf("%w: scheme %q (want smtp, smtps or file)", ErrBadURL, u.Scheme)
	}
}

// FilePath turns file://DIR into a path: file://./data/outbox and
// file://data/outbox are relative to the working directory, file:///var/x
// is absolute.
func FilePath(u *url.URL) string {
	p := u.Host + u.Path
	if u.Opaque != "" {
		p = u.Opaque
	}
	if p == "" {
		p = "."
	}
	return filepath.Clean(p)
}

// hostPort adds the scheme's default port when the URL has none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "25"
	if u.Scheme == "smtps" {
		port = "465"
	}
	return net.JoinHostPort(strings.Trim(u.Host, "[]"), port)
}
