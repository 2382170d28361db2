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
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTP relays through an SMTP server. It keeps up to PoolSize idle
// connections and reuses them: dialing, TLS and AUTH per message would
// cost more than the transaction itself. Safe for concurrent use.
type SMTP struct {
	addr        string
	implicitTLS bool
	requireTLS  bool
	tlsConfig   *tls.Config
	user, pass  string
	localName   string
	timeout     time.Duration
	maxIdle     time.Duration
	log         *slog.Logger

	idle   chan *conn
	mu     sync.Mutex
	closed bool
}

// NewSMTP builds the pooled sender for an smtp:// or smtps:// URL.
func NewSMTP(u *url.URL, opts Options) (*SMTP, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("%w: %s has no host", ErrBadURL, u.Redacted())
	}
	s := &SMTP{
		addr:        hostPort(u),
		implicitTLS: u.Scheme == "smtps",
		localName:   opts.LocalName,
		timeout:     opts.Timeout,
		maxIdle:     opts.MaxIdle,
		log:         opts.Logger,
	}
	switch opts.StartTLS {
	case "", "opportunistic":
	case "required":
		s.requireTLS = true
	default:
		return nil, fmt.Errorf("%w: starttls %q (want opportunistic or required)", ErrBadURL, opts.StartTLS)
	}
	if s.localName == "" {
		s.localName = "localhost"
	}
	if s.timeout <= 0 {
		s.timeout = time.Minute
	}
	if s.maxIdle <= 0 {
		s.maxIdle = 30 * time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	size := opts.PoolSize
	if size <= 0 {
		size = 20
	}
	s.idle = make(chan *conn, size)
	s.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.TLSConfig != nil {
		s.tlsConfig = opts.TLSConfig.Clone()
	}
	if s.tlsConfig.ServerName == "" {
		s.tlsConfig.ServerName = u.Hostname()
	}
	s.user, s.pass = opts.Username, opts.Password
	return s, nil
}

// Send runs one SMTP transaction. When the reply to the final dot is lost
// (the connection breaks after the message was sent) the copy may or may
// not have been delivered; Send then reports an error and does not retry,
// so the proxy never sends a copy twice by its own doing.
func (s *SMTP) Send(ctx context.Context, from string, to []string, msg io.WriterTo, opts *smtp.MailOptions) ([]error, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := s.get(ctx)
		if err != nil {
			return nil, err
		}
		// A cancelled context (shutdown, client gone) breaks the
		// conversation rather than leaving it to the timeout.
		stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Now()) })
		res := c.send(from, to, msg, opts)
		stop()
		if res.healthy {
			s.put(c)
		} else {
			c.nc.Close()
		}
		if res.err != nil && reused && !res.replied && !isReply(res.err) && !errors.Is(res.err, ErrNoSMTPUTF8) && attempt == 0 {
			// The upstream had closed the idle connection; nothing of
			// the message reached it. Once more on a fresh one.
			s.log.Debug("pooled upstream connection was stale", "err", res.err)
			continue
		}
		return res.rcptErrs, res.err
	}
}

func isReply(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se)
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// get takes an idle connection or dials a new one.
func (s *SMTP) get(ctx context.Context) (*conn, bool, error) {
	for {
		select {
		case c := <-s.idle:
			if time.Since(c.lastUsed) > s.maxIdle {
				c.nc.Close()
				continue
			}
			return c, true, nil
		default:
		}
		c, err := s.dial(ctx)
		return c, false, err
	}
}

// put returns p to the pool, or closes it when the pool is full or closed.
func (s *SMTP) put(c *conn) {
	c.lastUsed = time.Now()
	c.nc.SetDeadline(time.Time{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		select {
		case s.idle <- c:
			return
		default:
		}
	}
	go c.quit()
}

// dial connects, greets, upgrades to TLS and authenticates. A failure
// here is the connection's, not a verdict on a message, so it is never
// returned as an *smtp.SMTPError: the proxy would pass an upstream's 5xx
// on to its client, which would bounce the message for a fault in the
// proxy's setup (a wrong password, a greeting refusing this host).
func (s *SMTP) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	d := net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("upstream: dial %s: %w", s.addr, err)
	}
	// Closing the connection when ctx ends bounds the greeting, EHLO,
	// STARTTLS and AUTH by the one timeout.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	nc := raw
	if s.implicitTLS {
		tc := tls.Client(raw, s.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("upstream: tls with %s: %w", s.addr, err)
		}
		nc = tc
	}
	c := newConn(nc, s.timeout)
	fail := func(what string, err error) (*conn, error) {
		raw.Close()
		return nil, s.dialErr(ctx, what, err)
	}
	c.deadline()
	if _, err := c.expect(220); err != nil {
		return fail("greeting", err)
	}
	if err := c.hello(s.localName); err != nil {
		return fail("ehlo", err)
	}
	if !c.tls {
		switch {
		case c.has("STARTTLS"):
			if err := c.startTLS(ctx, s.tlsConfig, s.localName); err != nil {
				return fail("starttls", err)
			}
		case s.requireTLS:
			return fail("starttls", errors.New("STARTTLS required but not offered"))
		}
	}
	if s.user != "" {
		// A password goes only over TLS, or to this very machine: an
		// upstream that stopped offering STARTTLS (or a network that strips
		// it) must not get it in clear text.
		if !c.tls && !isLoopback(s.addr) {
			return fail("auth", errors.New("refusing to send the upstream password without TLS"))
		}
		if err := c.auth(s.user, s.pass); err != nil {
			return fail("auth", err)
		}
	}
	if !stop() { // ctx ended just now and closed the connection
		return fail("connect", ctx.Err())
	}
	c.nc.SetDeadline(time.Time{})
	return c, nil
}

// dialErr describes a failure while connecting, keeping the text of an
// upstream's reply but not its type (see dial).
func (s *SMTP) dialErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("upstream: %s: %s: %w (%v)", s.addr, what, ctx.Err(), err)
	}
	return fmt.Errorf("upstream: %s: %s: %v", s.addr, what, err)
}

// Ping checks that the upstream answers: NOOP on an idle connection, or a
// fresh dial with EHLO (and STARTTLS and AUTH) that then joins the pool.
func (s *SMTP) Ping(ctx context.Context) error {
	c, reused, err := s.get(ctx)
	if err != nil {
		return err
	}
	if _, err := c.cmd(250, "NOOP"); err != nil {
		c.nc.Close()
		if reused {
			return s.Ping(ctx)
		}
		return fmt.Errorf("upstream: %w", err)
	}
	s.put(c)
	return nil
}

// Close says QUIT on every idle connection. Sends in flight finish; their
// connections are closed instead of pooled.
func (s *SMTP) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for {
		select {
		case c := <-s.idle:
			c.quit()
		default:
			return nil
		}
	}
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
