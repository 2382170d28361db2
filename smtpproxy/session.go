package smtpproxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
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

// transaction is the envelope of the message being received.
type transaction struct {
	from     string
	mailOpts smtp.MailOptions
	rcpts    []recipient
	// refused are the recipients refused at RCPT, whose receipts wait
	// for the message's.
	refused []refusal
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

func (x *session) Logout() error {
	x.srv.flushRefusals(x)
	x.srv.track(x, false)
	x.srv.metrics.connections.Dec()
	return nil
}

func (x *session) Reset() {
	x.srv.flushRefusals(x)
	x.tx = transaction{}
	x.busy.Store(false)
}

// AuthMechanisms is what EHLO offers. Without TLS, off loopback, it
// offers none: a client told of AUTH PLAIN would send its password in
// the clear before learning that it is refused.
func (x *session) AuthMechanisms() []string {
	if !x.mayAuth() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// mayAuth reports whether a password may be sent on this connection.
func (x *session) mayAuth() bool {
	_, isTLS := x.conn.TLSConnectionState()
	return isTLS || x.remote.IsLoopback()
}

func (x *session) Auth(mech string) (sasl.Server, error) {
	if !x.mayAuth() {
		return nil, x.srv.reply(errEncryptionRequired)
	}
	check := func(username, password string) error {
		if x.srv.auth.locked(x.remote, x.srv.opts.Now()) {
			x.srv.log.Warn("auth refused: too many failures from this address", "remote", x.remote.String())
			x.hangUp()
			return x.srv.reply(errAuthLocked)
		}
		u := x.srv.authenticate(username, password)
		if u == nil {
			x.srv.auth.failed(x.remote, x.srv.opts.Now())
			x.fails++
			x.srv.log.Warn("auth failed", "remote", x.remote.String(), "user_hash", userHash(username), "failures", x.fails)
			if x.fails >= maxAuthFailures {
				x.hangUp()
			}
			return x.srv.reply(errAuthFailed)
		}
		x.srv.auth.succeeded(x.remote)
		x.user = u
		x.srv.log.Info("auth ok", "remote", x.remote.String(), "user", u.Name)
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return x.srv.reply(errAuthFailed)
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, x.srv.reply(errAuthMechanism)
}

// hangUp ends the connection once the reply being prepared is written:
// it shuts the reading side, so go-smtp writes the reply and then its next
// read ends the connection. Closing the connection here would race the
// reply, which go-smtp writes only after Auth returns.
func (x *session) hangUp() {
	nc := x.raw
	if tc, ok := nc.(*trackedConn); ok {
		nc = tc.Conn
	}
	if cr, ok := nc.(interface{ CloseRead() error }); ok && cr.CloseRead() == nil {
		return
	}
	go x.conn.Close()
}

func (x *session) Mail(from string, opts *smtp.MailOptions) error {
	if x.srv.isDraining() {
		return x.srv.reply(errShuttingDown)
	}
	if x.user == nil && !x.trusted {
		return x.srv.reply(errAuthRequired)
	}
	if from != "" {
		if _, err := optin.ParseAddress(from); err != nil {
			return x.srv.reply(errBadSender)
		}
	}
	if x.user != nil && !x.user.mayUseFrom(from) {
		return x.srv.reply(errSenderDomain)
	}
	x.busy.Store(true)
	x.srv.flushRefusals(x)
	x.tx = transaction{from: from}
	if opts != nil {
		x.tx.mailOpts = *opts
	}
	return x.srv.reply(nil)
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	addr, err := optin.ParseAddress(to)
	if err != nil {
		return x.srv.reply(errBadRecipient)
	}
	if len(x.tx.rcpts) >= x.srv.opts.MaxRecipients {
		return x.srv.reply(errTooManyRecipients)
	}
	for _, r := range x.tx.rcpts {
		if r.addr == addr {
			return x.srv.reply(nil) // a repeated RCPT gets one copy
		}
	}
	r := recipient{raw: to, addr: addr}
	for _, f := range x.tx.refused {
		if f.addr == addr {
			return x.srv.reply(refusalReply(f))
		}
	}
	if err := x.srv.decideRcpt(x, r); err != nil {
		return x.srv.reply(err)
	}
	x.tx.rcpts = append(x.tx.rcpts, r)
	return x.srv.reply(nil)
}

func (x *session) Data(r io.Reader) error {
	buf := getBuffer()
	defer putBuffer(buf)
	if _, err := buf.ReadFrom(r); err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			return x.srv.reply(errTooLarge)
		}
		if errors.Is(err, smtp.ErrTooLongLine) {
			return x.srv.reply(errLineTooLong)
		}
		// The client went away or timed out mid-message: nothing relayed.
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
			return x.srv.reply(errClientGone)
		}
		return x.srv.reply(err)
	}
	return x.srv.relay(x, buf.Bytes())
}

// tlsName names the protocol for the Received: header (RFC 3848).
func (x *session) protocol() string {
	p := "ESMTP"
	if _, ok := x.conn.TLSConnectionState(); ok {
		p += "S"
	}
	if x.user != nil {
		p += "A"
	}
	return p
}

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return buffers.Get().(*bytes.Buffer) }

// putBuffer keeps buffers up to 1 MiB for reuse; bigger ones would pin
// memory after one large message.
func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return
	}
	b.Reset()
	buffers.Put(b)
}

// userName is the SMTP user for logs and events, or "" when trusted by
// network.
func (x *session) userName() string {
	if x.user == nil {
		return ""
	}
	return x.user.Name
}

func hasNonASCII(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 }) >= 0
}
