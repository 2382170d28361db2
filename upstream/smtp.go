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

// SMTP relays through an SMTP server over at most PoolSize connections at
// once, reused while idle: dialing, TLS and AUTH per message would cost
// more than the transaction itself. A Send finding every connection busy
// waits for one, in turn, up to its context's end: an upstream sized for a
// number of connections does not get more however many copies are due.
// Safe for concurrent use.
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

	// size is the bound of connections. Each is a slot, which is in
	// idle with its connection, in free without one, or held by a caller:
	// len(idle)+len(free)+held is always size, so sending to either
	// channel never blocks.
	size   int
	idle   chan *conn
	free   chan struct{}
	mu     sync.Mutex
	closed bool
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
	s.size = size
	s.idle = make(chan *conn, size)
	s.free = make(chan struct{}, size)
	for range size {
		s.free <- struct{}{}
	}
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
	c, reused, err := s.get(ctx)
	for attempt := 0; ; attempt++ {
		if err != nil {
			return nil, err
		}
		stop := c.watch(ctx)
		res := c.send(from, to, msg, opts)
		interrupted := !stop()
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
			// the message reached it. Once more on a fresh one, in the
			// same slot: waiting for another could outlast ctx while
			// this one is free.
			s.log.Debug("pooled upstream connection was stale", "err", res.err)
			c, reused, err = s.redial(ctx)
			continue
		}
		if !res.healthy || interrupted {
			s.release()
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

// get takes an idle connection, or a free slot and dials in it, waiting
// for either while every connection is busy. Waiters are served in turn
// (a channel's receivers are), and none holds a connection while it
// waits, so the copies of one message cannot starve each other.
func (s *SMTP) get(ctx context.Context) (*conn, bool, error) {
	for {
		var c *conn
		select {
		case c = <-s.idle:
		default:
			select {
			case c = <-s.idle:
			case <-s.free:
				return s.redial(ctx)
			case <-ctx.Done():
				return nil, false, &busyError{size: s.size, addr: s.addr, ctx: ctx.Err()}
			}
		}
		if time.Since(c.lastUsed) <= s.maxIdle {
			return c, true, nil
		}
		// Kept too long: likely closed by the upstream by now. Its slot
		// goes back, so that an idle connection is preferred to a dial.
		c.nc.Close()
		s.release()
	}
}

// redial dials in the slot the caller holds, and gives the slot back if
// that fails.
func (s *SMTP) redial(ctx context.Context) (*conn, bool, error) {
	c, err := s.dial(ctx)
	if err != nil {
		s.release()
		return nil, false, err
	}
	return c, false, nil
}

// release gives back the slot of a connection that was closed.
func (s *SMTP) release() { s.free <- struct{}{} }

// put returns c, with its slot, to the pool; once the pool is closed c is
// just closed, as Close may have returned.
func (s *SMTP) put(c *conn) {
	c.lastUsed = time.Now()
	c.nc.SetDeadline(time.Time{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.nc.Close()
		s.release()
		return
	}
	s.idle <- c
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
// While every connection is busy it waits its turn like a Send.
func (s *SMTP) Ping(ctx context.Context) error {
	c, reused, err := s.get(ctx)
	if err != nil {
		return err
	}
	stop := c.watch(ctx)
	_, err = c.cmd(250, "NOOP")
	interrupted := !stop()
	if err == nil && !interrupted {
		s.put(c)
		return nil
	}
	c.nc.Close()
	s.release()
	switch {
	case err == nil:
		return nil
	case reused && !interrupted && !errors.Is(err, os.ErrDeadlineExceeded):
		return s.Ping(ctx) // that one had gone stale; the next may not have
	}
	return fmt.Errorf("upstream: ping: %w", err)
}

// Close says QUIT on every idle connection, all at once, and waits for
// those, each bounded by the timeout (at most five seconds). Sends in
// flight finish; their connections are closed instead of pooled.
func (s *SMTP) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	var idle sync.WaitGroup
drain:
	for {
		select {
		case c := <-s.idle:
			idle.Go(func() {
				c.quit(s.quitTimeout())
				s.release()
			})
		default:
			break drain
		}
	}
	idle.Wait()
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
