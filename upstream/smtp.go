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
	"os"
	"sync"
	"syscall"
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
	dotTimeout  time.Duration
	maxIdle     time.Duration
	log         *slog.Logger

	idle   chan *conn
	mu     sync.Mutex
	closed bool
	quits  sync.WaitGroup // QUITs in the background; Close waits for them
}

// quitTimeout bounds a QUIT, and with it Close: shutdown must not wait
// on a slow upstream's goodbye.
const quitTimeout = 5 * time.Second

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
		dotTimeout:  opts.DotTimeout,
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
	if s.dotTimeout <= 0 {
		s.dotTimeout = 10 * time.Minute
	}
	s.dotTimeout = max(s.dotTimeout, s.timeout)
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
//
// Each command and its reply, and each buffer of the message, must
// progress within the timeout, and the reply to the final dot within the
// dot timeout; ctx bounds the whole of it, and its end interrupts the
// conversation (the error then wraps ctx.Err()).
func (s *SMTP) Send(ctx context.Context, from string, to []string, msg io.WriterTo, opts *smtp.MailOptions) ([]error, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := s.get(ctx)
		if err != nil {
			return nil, err
		}
		stop := c.watch(ctx)
		res := c.send(from, to, msg, opts)
		interrupted := stop()
		if res.healthy && !interrupted {
			s.put(c)
		} else {
			c.nc.Close()
		}
		if interrupted && res.err != nil && !isReply(res.err) {
			res.err = fmt.Errorf("%w (%w)", res.err, ctx.Err())
		}
		if attempt == 0 && reused && !res.replied && !interrupted && isStale(res.err) {
			// The upstream had closed the idle connection; nothing of
			// the message reached it. Once more on a fresh one.
			s.log.Debug("pooled upstream connection was stale", "err", res.err)
			continue
		}
		return res.rcptErrs, res.err
	}
}

// isStale tells a connection the upstream closed (the first read finds
// its end, the first write a reset) from one that is slow: a timeout
// fails the attempt, else a stalling upstream would get a second
// timeout's worth on a fresh connection.
func isStale(err error) bool {
	switch {
	case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
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

// put returns c to the pool. When the pool is full c says QUIT in the
// background; once the pool is closed it is just closed, as Close may
// have returned.
func (s *SMTP) put(c *conn) {
	c.lastUsed = time.Now()
	c.nc.SetDeadline(time.Time{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.nc.Close()
		return
	}
	select {
	case s.idle <- c:
	default:
		s.quits.Go(func() { c.quit(s.quitTimeout()) })
	}
}

func (s *SMTP) quitTimeout() time.Duration { return min(s.timeout, quitTimeout) }

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
	c := newConn(nc, s.timeout, s.dotTimeout)
	fail := func(what string, err error) (*conn, error) {
		raw.Close()
		return nil, s.dialErr(ctx, what, err)
	}
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
			raw.Close()
			return nil, fmt.Errorf("%w by %s", ErrNoStartTLS, s.addr)
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
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("upstream: %s: %s: %w (%v)", s.addr, what, ctx.Err(), err)
	case isReply(err):
		return fmt.Errorf("upstream: %s: %s: %v", s.addr, what, err)
	}
	return fmt.Errorf("upstream: %s: %s: %w", s.addr, what, err)
}

// Ping checks that the upstream answers: NOOP on an idle connection, or a
// fresh dial with EHLO (and STARTTLS and AUTH) that then joins the pool.
func (s *SMTP) Ping(ctx context.Context) error {
	c, reused, err := s.get(ctx)
	if err != nil {
		return err
	}
	stop := c.watch(ctx)
	_, err = c.cmd(250, "NOOP")
	interrupted := stop()
	switch {
	case err == nil && !interrupted:
		s.put(c)
		return nil
	case err == nil:
		c.nc.Close()
		return nil
	}
	c.nc.Close()
	if reused && !interrupted && !errors.Is(err, os.ErrDeadlineExceeded) {
		return s.Ping(ctx) // that one had gone stale; the next may not have
	}
	return fmt.Errorf("upstream: ping: %w", err)
}

// Close says QUIT on every idle connection, all at once, and waits for
// those and the QUITs already under way, each bounded by the timeout
// (at most five seconds). Sends in flight finish; their connections are
// closed instead of pooled.
func (s *SMTP) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	var idle sync.WaitGroup
drain:
	for {
		select {
		case c := <-s.idle:
			idle.Go(func() { c.quit(s.quitTimeout()) })
		default:
			break drain
		}
	}
	idle.Wait()
	s.quits.Wait()
	return nil
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
