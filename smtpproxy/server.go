// Package smtpproxy is the SMTP door of optinproxy: a before-queue relay on
// emersion/go-smtp. A client submits a message; the proxy decides who may
// get it, hands the copies to the Upstream, and answers DATA only after the
// upstream did, so a 250 means the mailer has the message and a 4xx means
// the client still holds it. It never relays for a client that is
// neither authenticated nor on a trusted network.
package smtpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
)

// Upstream takes the copies the proxy relays. Send delivers msg to every
// address in to in one transaction. A non-nil err means nobody got it: an
// *smtp.SMTPError when the upstream answered so, any other error when it
// was unreachable. With err nil, rcptErrs (nil, or one entry per address
// of to) holds the recipients the upstream refused while the others got
// the copy. Send is called concurrently.
type Upstream interface {
	Send(ctx context.Context, from string, to []string, msg io.WriterTo, opts *smtp.MailOptions) (rcptErrs []error, err error)
}

// Options configure a Server. Upstream is required; zero values elsewhere
// take the documented defaults.
type Options struct {
	// Hostname is greeted with and written into Received: and Message-ID:.
	Hostname string
	// TLSConfig enables STARTTLS on Serve and is required by ServeTLS.
	TLSConfig *tls.Config
	// Users, Purposes, DefaultPurpose and Roles are the first Rules;
	// Reload replaces them.
	Users []User
	// AuthFailLimit failed logins from one client address, over any
	// number of connections, lock that address out of AUTH for
	// AuthLockout after its last failure. Defaults: 10 and 15 minutes.
	AuthFailLimit int
	AuthLockout   time.Duration
	// TrustedNetworks may relay without AUTH. Nil means loopback only; an
	// empty, non-nil slice trusts nobody.
	TrustedNetworks []netip.Prefix
	MaxMessageBytes int64
	MaxRecipients   int
	// MaxInflightBytes bounds the message bytes held by all transactions
	// at once; a message that would pass it is refused with 452 4.3.1.
	MaxInflightBytes int64
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	// FirstCommandTimeout bounds the wait from the connection to the
	// client's EHLO or HELO (ReadTimeout, the wait for each command
	// after it), so that a client that connects and stays silent is
	// dropped early. Default: 30 seconds, and never more than ReadTimeout.
	FirstCommandTimeout time.Duration
	// MaxConnections and MaxConnectionsPerIP bound the connections open
	// at once over all listeners, in all and per client (an IPv4 address,
	// or an IPv6 /64). Beyond either, a new connection is answered 421
	// 4.7.0 and closed without a session; a tenth of MaxConnections is
	// kept for trusted networks. Defaults: 1000 and 100.
	MaxConnections      int
	MaxConnectionsPerIP int
	// UpstreamTimeout bounds the whole upstream hand-off of one message.
	UpstreamTimeout time.Duration
	Upstream        Upstream
	// Store decides every recipient and records each decision (and the
	// delivered copies) in the consent ledger. Required.
	Store Store
	// Purposes are the configured purposes; a message's purpose must be
	// one of them.
	Purposes optin.Purposes
	// DefaultPurpose is policy.default_purpose.
	DefaultPurpose string
	// Roles are the role addresses; nil means the built-in list.
	Roles *optin.RoleAddresses
	// Monitor decides and records every recipient but relays to all
	// (policy.mode: monitor).
	Monitor bool
	// BlockedDSN sends the envelope sender a delivery status
	// notification (RFC 3464) naming the blocked recipients of a message
	// that was relayed to the others.
	BlockedDSN bool
	// Personalize, when set, makes a copy per recipient for purposes
	// that inject unsubscribe links.
	Personalize Personalize
	// MailtoDomain and Unsubscriber, when both set, accept mail to
	// unsubscribe+TOKEN@MailtoDomain from any client, without AUTH, and
	// apply the token; every other recipient still needs AUTH or a
	// trusted network.
	MailtoDomain string
	Unsubscriber Unsubscriber
	// Signer, when set, DKIM-signs every copy whose From domain has a
	// key. Without it, BrokenSignatures (when set) counts the sender's
	// signatures that a personal copy broke.
	Signer           Signer
	BrokenSignatures func(msg []byte, changed ...string) int
	// Sent, when set, is told how many copies went out for a From
	// domain, after each message: the complaint rate's denominator.
	Sent func(fromDomain string, copies int)
	// DedupWindow is how long the store remembers a delivered copy, so
	// that a client's retry does not send it again.
	DedupWindow time.Duration
	Logger      *slog.Logger
	// Metrics registers the proxy's collectors; nil registers nowhere.
	Metrics prometheus.Registerer
	Now     func() time.Time
}

// Server is the SMTP relay. Serve and ServeTLS may be called for several
// listeners; Shutdown stops them all.
type Server struct {
	opts Options
	// rules are the users, purposes and role addresses in force; Reload
	// replaces them whole, and the hot path only loads the pointer.
	rules   atomic.Pointer[rules]
	batcher *optin.Batcher
	// inflight is the budget of message bytes held at once.
	inflight *budget
	auth     *authLimiter
	log      *slog.Logger
	metrics  *metrics
	smtp     *smtp.Server
	limits   *connLimits

	mu       sync.Mutex
	sessions map[*session]struct{}
	// conns are all accepted connections, with or without a session yet.
	conns map[net.Conn]struct{}
	// draining is read on every MAIL; atomic, so that it takes no lock.
	draining atomic.Bool
	// relays is the parent of every upstream hand-off; stopRelays ends
	// them when Shutdown runs out of time.
	relays     context.Context
	stopRelays context.CancelFunc
	// relaying counts messages between their last byte and their reply,
	// so that Shutdown closes the batcher only after their receipts.
	relaying sync.WaitGroup
	// stopped is set, under mu, once Shutdown waits for relaying.
	stopped bool
}

// New validates opts and builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Upstream == nil {
		return nil, errors.New("smtpproxy: no upstream")
	}
	if opts.Store == nil {
		return nil, errors.New("smtpproxy: no consent store")
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.TrustedNetworks == nil {
		opts.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 25 << 20
	}
	if opts.MaxInflightBytes <= 0 {
		opts.MaxInflightBytes = 1 << 30
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 1000
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 1000
	}
	if opts.MaxConnectionsPerIP <= 0 {
		opts.MaxConnectionsPerIP = 100
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 5 * time.Minute
	}
	if opts.FirstCommandTimeout <= 0 {
		opts.FirstCommandTimeout = 30 * time.Second
	}
	opts.FirstCommandTimeout = min(opts.FirstCommandTimeout, opts.ReadTimeout)
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = time.Minute
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = 2 * time.Minute
	}
	if opts.AuthFailLimit <= 0 {
		opts.AuthFailLimit = 10
	}
	if opts.AuthLockout <= 0 {
		opts.AuthLockout = 15 * time.Minute
	}
	if opts.DedupWindow <= 0 {
		opts.DedupWindow = 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rules, err := newRules(Rules{Users: opts.Users, Purposes: opts.Purposes, DefaultPurpose: opts.DefaultPurpose, Roles: opts.Roles})
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:     opts,
		auth:     newAuthLimiter(opts.AuthFailLimit, opts.AuthLockout),
		log:      opts.Logger.With("component", "smtp"),
		sessions: make(map[*session]struct{}),
		conns:    make(map[net.Conn]struct{}),
		limits:   newConnLimits(opts.MaxConnections, opts.MaxConnectionsPerIP),
	}
	s.rules.Store(rules)
	s.relays, s.stopRelays = context.WithCancel(context.Background())
	s.batcher = optin.NewBatcher(opts.Store, 0, opts.UpstreamTimeout)
	s.inflight = newBudget(opts.MaxInflightBytes)
	if s.metrics, err = newMetrics(opts.Metrics, s.inflight); err != nil {
		return nil, err
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.openSession))
	srv.Domain = opts.Hostname
	srv.TLSConfig = opts.TLSConfig
	srv.MaxMessageBytes = opts.MaxMessageBytes
	// The recipient limit is checked in Rcpt, so that its 452 is counted
	// with the other replies.
	srv.ReadTimeout = opts.ReadTimeout
	srv.WriteTimeout = opts.WriteTimeout
	srv.EnableSMTPUTF8 = true
	// AUTH is checked per connection in Auth: plain text is fine from
	// loopback, elsewhere only after STARTTLS.
	srv.AllowInsecureAuth = true
	srv.ErrorLog = slogPrinter{s.log}
	s.smtp = srv
	return s, nil
}

// openSession is go-smtp's backend. go-smtp calls it at the client's first
// EHLO or HELO, which ends the shorter wait for the first command.
func (s *Server) openSession(c *smtp.Conn) (smtp.Session, error) {
	sess, err := s.newSession(c)
	if err != nil {
		return nil, err
	}
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if tc, ok := nc.(*trackedConn); ok {
		tc.greeted.Store(true)
	}
	return sess, nil
}

// Serve accepts SMTP on l, offering STARTTLS when a TLS config was given.
// It returns nil after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	return s.serve(trackingListener{Listener: l, srv: s})
}

// ServeTLS accepts implicit-TLS SMTP on l (as on port 465).
func (s *Server) ServeTLS(l net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("smtpproxy: implicit TLS needs a certificate")
	}
	// TLS goes outside the tracking, so that go-smtp sees a *tls.Conn.
	return s.serve(tls.NewListener(trackingListener{Listener: l, srv: s, implicitTLS: true}, s.opts.TLSConfig))
}

func (s *Server) serve(l net.Listener) error {
	err := s.smtp.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets transactions in flight finish, closes
// idle connections, and returns when all are gone or ctx ends; then it
// closes what is left and returns ctx's error. Either way, the receipts
// of every message relayed are written (or journaled) before it returns,
// so the store may be closed after it.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.shutdown(ctx)
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.relaying.Wait()
	s.batcher.Close()
	return err
}

func (s *Server) shutdown(ctx context.Context) error {
	s.draining.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.smtp.Shutdown(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeConns(false)
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, smtp.ErrServerClosed) {
				// Out of time: abort the upstream hand-offs still running,
				// so that a copy whose client is cut off is not delivered
				// now and again on the client's retry. go-smtp's Close does
				// nothing after its Shutdown.
				s.stopRelays()
				s.closeConns(true)
				return err
			}
			return nil
		case <-tick.C:
		}
	}
}

// closeConns closes the connections that are between transactions, or
// have not started a session yet; with all, every connection.
func (s *Server) closeConns(all bool) {
	var idle []net.Conn
	s.mu.Lock()
	busy := make(map[net.Conn]bool)
	for sess := range s.sessions {
		if sess.busy.Load() && !all {
			busy[sess.raw] = true
		}
	}
	for c := range s.conns {
		if !busy[c] {
			idle = append(idle, c)
		}
	}
	s.mu.Unlock()
	// go-smtp's next read fails and it ends the session (Logout).
	for _, c := range idle {
		c.Close()
	}
}

// trackingListener admits the connections it accepts within the
// connection limits, refusing the others, and records them in srv.conns
// until they are closed.
type trackingListener struct {
	net.Listener
	srv *Server
	// implicitTLS: the connections are wrapped in TLS after Accept.
	implicitTLS bool
}

// Accept returns the next connection admitted; refused ones are answered
// and closed here, so go-smtp never sees them.
func (l trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := l.srv.admit(c, l.implicitTLS); tc != nil {
			return tc, nil
		}
	}
}

// admit counts c in and tracks it, or refuses it and returns nil.
func (s *Server) admit(c net.Conn, implicitTLS bool) *trackedConn {
	ip := remoteIP(c.RemoteAddr())
	client := clientOf(ip)
	if reason := s.limits.admit(client, s.trusted(ip)); reason != "" {
		s.metrics.refused.WithLabelValues(reason).Inc()
		refuse(c, implicitTLS)
		return nil
	}
	tc := &trackedConn{Conn: c, srv: s, client: client, firstBy: time.Now().Add(s.opts.FirstCommandTimeout)}
	s.mu.Lock()
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	return tc
}

// trackedConn is an admitted connection. Until the client's EHLO or HELO
// (greeted), no read waits past firstBy: go-smtp sets a deadline of
// ReadTimeout before each command, and this keeps the earlier one.
type trackedConn struct {
	net.Conn
	srv     *Server
	client  netip.Prefix
	firstBy time.Time
	greeted atomic.Bool
	closed  sync.Once
	// closeAfterWrite closes the connection after its next write: the
	// reply that ends a session (see session.hangUp).
	closeAfterWrite atomic.Bool
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.clamp(t))
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetReadDeadline(c.clamp(t))
}

// clamp returns the read deadline to set instead of t.
func (c *trackedConn) clamp(t time.Time) time.Time {
	if c.greeted.Load() || (!t.IsZero() && t.Before(c.firstBy)) {
		return t
	}
	return c.firstBy
}

// Close counts the connection out, once, before closing it.
func (c *trackedConn) Close() error {
	c.closed.Do(func() {
		c.srv.mu.Lock()
		delete(c.srv.conns, c)
		c.srv.mu.Unlock()
		c.srv.limits.release(c.client)
	})
	return c.Conn.Close()
}

func (s *Server) track(sess *session, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.sessions[sess] = struct{}{}
	} else {
		delete(s.sessions, sess)
	}
}

// startRelay counts a message into relaying, unless Shutdown is past
// waiting for them.
func (s *Server) startRelay() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.relaying.Add(1)
	return true
}

func (s *Server) isDraining() bool { return s.draining.Load() }

func (s *Server) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range s.opts.TrustedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// slogPrinter routes go-smtp's internal error log into slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.log.Warn("smtp server", "detail", logText(fmt.Sprintf(format, v...)))
}

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("smtp server", "detail", logText(fmt.Sprint(v...)))
}
