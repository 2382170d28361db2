package smtpproxy

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"optinproxy/optin"
)

// session is one SMTP connection. go-smtp calls its methods from the
// connection's goroutine only; busy is also read by Shutdown.
type session struct {
	srv  *Server
	conn *smtp.Conn
	// raw is the accepted connection under any TLS, which Shutdown closes.
	raw     net.Conn
	remote  netip.Addr
	trusted bool
	user    *User
	fails   int
	// busy is true from MAIL until the transaction ends (Reset), so that
	// Shutdown closes only connections between transactions.
	busy atomic.Bool

	tx transaction
}

// transaction is one message on its way through the relay: the
// envelope that MAIL and RCPT gather, and, from DATA on, the message and
// what the relay needs to decide, send, record and answer for it.
type transaction struct {
	from     string
	mailOpts smtp.MailOptions
	// actor names the sender in receipts: the SMTP user, or "smtp" for a
	// client trusted by its network.
	actor string
	user  *User
	// rules are those in force at MAIL FROM, kept to the transaction's
	// end however often the configuration is reloaded meanwhile.
	rules *rules
	rcpts []recipient
	// refused are the recipients refused at RCPT, whose receipts wait
	// for the message's.
	refused []refusal
	// unsubscribes are the tokens of the unsubscribe addresses named;
	// anonymous is set when the client may name nothing else.
	unsubscribes []string
	anonymous    bool

	// Set at DATA by open.
	msg     *message
	purpose optin.Purpose
	qid     string
	log     *slog.Logger
}

// recipient keeps the address as the client wrote it, which is what goes
// upstream, and its normalized form, which is what decisions use.
type recipient struct {
	raw  string
	addr optin.Address
}

// maxAuthFailures closes a connection that keeps guessing passwords.
const maxAuthFailures = 3

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	if s.isDraining() {
		return nil, errShuttingDown
	}
	sess := &session{srv: s, conn: c, raw: c.Conn()}
	if tc, ok := sess.raw.(*tls.Conn); ok {
		sess.raw = tc.NetConn()
	}
	if ap, err := netip.ParseAddrPort(c.Conn().RemoteAddr().String()); err == nil {
		sess.remote = ap.Addr().Unmap()
	}
	sess.trusted = s.trusted(sess.remote)
	s.track(sess, true)
	s.metrics.connections.Inc()
	return sess, nil
}

func (sess *session) Logout() error {
	sess.srv.flushRefusals(sess)
	sess.srv.track(sess, false)
	sess.srv.metrics.connections.Dec()
	return nil
}

func (sess *session) Reset() {
	sess.srv.flushRefusals(sess)
	sess.tx = transaction{}
	sess.busy.Store(false)
}

// AuthMechanisms is what EHLO offers. Without TLS, off loopback, it
// offers none: a client told of AUTH PLAIN would send its password in
// the clear before learning that it is refused.
func (sess *session) AuthMechanisms() []string {
	if !sess.mayAuth() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// mayAuth reports whether a password may be sent on this connection.
func (sess *session) mayAuth() bool {
	_, isTLS := sess.conn.TLSConnectionState()
	return isTLS || sess.remote.IsLoopback()
}

func (sess *session) Auth(mech string) (sasl.Server, error) {
	if !sess.mayAuth() {
		return nil, sess.srv.reply(errEncryptionRequired)
	}
	check := func(username, password string) error {
		if sess.srv.auth.locked(sess.remote, sess.srv.opts.Now()) {
			sess.srv.log.Warn("auth refused: too many failures from this address", "remote", sess.remote.String())
			sess.hangUp()
			return sess.srv.reply(errAuthLocked)
		}
		u := sess.srv.authenticate(username, password)
		if u == nil {
			sess.srv.auth.failed(sess.remote, sess.srv.opts.Now())
			sess.fails++
			sess.srv.log.Warn("auth failed", "remote", sess.remote.String(), "user_hash", userHash(username), "failures", sess.fails)
			if sess.fails >= maxAuthFailures {
				sess.hangUp()
			}
			return sess.srv.reply(errAuthFailed)
		}
		sess.srv.auth.succeeded(sess.remote)
		sess.user = u
		sess.srv.log.Info("auth ok", "remote", sess.remote.String(), "user", u.Name)
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return sess.srv.reply(errAuthFailed)
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, sess.srv.reply(errAuthMechanism)
}

// hangUp ends the connection once the reply being prepared is written:
// closing it here would race the reply, which go-smtp writes only after
// Auth returns, and shutting its reading side is not enough on Linux,
// where data that arrives afterwards can still be read.
func (sess *session) hangUp() {
	if tc, ok := sess.raw.(*trackedConn); ok {
		tc.closeAfterWrite.Store(true)
		return
	}
	go sess.conn.Close()
}

func (sess *session) Mail(from string, opts *smtp.MailOptions) error {
	if sess.srv.isDraining() {
		return sess.srv.reply(errShuttingDown)
	}
	rules := sess.srv.rules.Load()
	if sess.user != nil {
		// The user's entry as it is now: a reload may have changed or
		// removed it since AUTH.
		u := rules.users[sess.user.Name]
		if u == nil {
			sess.srv.log.Warn("mail refused: the authenticated user is no longer configured", "remote", sess.remote.String(), "user", sess.user.Name)
			return sess.srv.reply(errUserGone)
		}
		if u.PasswordHash != sess.user.PasswordHash {
			// A password is changed because it leaked: a session logged
			// in with the old one ends with it.
			sess.srv.log.Warn("session ended: the authenticated user's password changed", "remote", sess.remote.String(), "user", sess.user.Name)
			sess.hangUp()
			return sess.srv.reply(errPasswordChanged)
		}
		sess.user = u
	}
	// A client that may not relay may still mail an unsubscribe address:
	// RCPT lets it name nothing else.
	anonymous := sess.user == nil && !sess.trusted
	if anonymous && (sess.srv.opts.MailtoDomain == "" || sess.srv.opts.Unsubscriber == nil) {
		return sess.srv.reply(errAuthRequired)
	}
	if from != "" {
		if _, err := optin.ParseAddress(from); err != nil {
			return sess.srv.reply(errBadSender)
		}
	}
	if sess.user != nil && !sess.user.mayUseFrom(from) {
		return sess.srv.reply(errSenderDomain)
	}
	if opts != nil && opts.Size > 0 && !sess.srv.inflight.fits(opts.Size) {
		return sess.srv.reply(errBusy)
	}
	sess.busy.Store(true)
	sess.srv.flushRefusals(sess)
	sess.tx = transaction{from: from, actor: sess.actor(), user: sess.user, rules: rules, anonymous: anonymous}
	if opts != nil {
		sess.tx.mailOpts = *opts
	}
	return sess.srv.reply(nil)
}

func (sess *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if len(sess.tx.rcpts)+len(sess.tx.unsubscribes) >= sess.srv.opts.MaxRecipients {
		return sess.srv.reply(errTooManyRecipients)
	}
	// An unsubscribe address comes first: its token makes the local part
	// longer than the 64 octets ParseAddress allows.
	if token, ok := sess.srv.unsubscribeToken(to); ok {
		if err := sess.srv.opts.Unsubscriber.Check(token); err != nil {
			return sess.srv.reply(errBadUnsubscribe)
		}
		sess.tx.unsubscribes = append(sess.tx.unsubscribes, token)
		return sess.srv.reply(nil)
	}
	addr, err := optin.ParseAddress(to)
	if err != nil {
		return sess.srv.reply(errBadRecipient)
	}
	if sess.tx.anonymous {
		return sess.srv.reply(errAuthRequired)
	}
	for _, r := range sess.tx.rcpts {
		if r.addr == addr {
			return sess.srv.reply(nil) // a repeated RCPT gets one copy
		}
	}
	r := recipient{raw: to, addr: addr}
	for _, f := range sess.tx.refused {
		if f.addr == addr {
			return sess.srv.reply(refusalReply(f))
		}
	}
	if err := sess.srv.decideRcpt(sess, r); err != nil {
		return sess.srv.reply(err)
	}
	sess.tx.rcpts = append(sess.tx.rcpts, r)
	return sess.srv.reply(nil)
}

func (sess *session) Data(r io.Reader) error {
	srv := sess.srv
	limit := srv.opts.MaxMessageBytes
	if sess.tx.anonymous {
		limit = min(limit, maxUnsubscribeMessage)
	}
	raw, held, err := srv.inflight.read(r, sess.tx.mailOpts.Size, limit)
	if err != nil {
		if errors.Is(err, errOverBudget) {
			srv.log.Warn("message refused: the in-flight byte budget is used up", "remote", sess.remote.String(), "limit", srv.opts.MaxInflightBytes)
		}
		// The client went away, timed out, or sent too much: nothing
		// relayed.
		return srv.reply(readError(err))
	}
	defer srv.inflight.release(raw, held)
	if !srv.startRelay() {
		return srv.reply(errShuttingDown)
	}
	defer srv.relaying.Done()
	return srv.relay(sess, raw)
}

// tlsName names the protocol for the Received: header (RFC 3848).
func (sess *session) protocol() string {
	p := "ESMTP"
	if _, ok := sess.conn.TLSConnectionState(); ok {
		p += "S"
	}
	if sess.user != nil {
		p += "A"
	}
	return p
}

// userName is the SMTP user for logs and events, or "" when trusted by
// network.
func (sess *session) userName() string {
	if sess.user == nil {
		return ""
	}
	return sess.user.Name
}

func hasNonASCII(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 }) >= 0
}
