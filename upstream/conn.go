package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// conn is one client connection to the upstream. It speaks SMTP over
// net/textproto rather than through go-smtp's client because that client
// has no PIPELINING (RFC 2920): lock-step, every message costs four round
// trips and a write for every few bytes of dot-stuffing, which on the
// benchmark was a fifth of the proxy's CPU. Here MAIL, every RCPT and DATA
// go out in one write, and the dot-stuffed message in one more.
type conn struct {
	nc       net.Conn
	r        *textproto.Reader
	w        *bufio.Writer
	ext      map[string]string
	tls      bool
	timeout  time.Duration
	lastUsed time.Time
}

func newConn(nc net.Conn, timeout time.Duration) *conn {
	_, isTLS := nc.(*tls.Conn)
	return &conn{nc: nc, r: textproto.NewReader(bufio.NewReader(nc)), w: bufio.NewWriterSize(nc, 8<<10), tls: isTLS, timeout: timeout}
}

// deadline bounds the next step (a command and its reply, or the message).
func (c *conn) deadline() { c.nc.SetDeadline(time.Now().Add(c.timeout)) }

// reply reads one reply. A 4xx or 5xx comes back as an *smtp.SMTPError,
// so that the proxy can pass an upstream's refusal on; a broken or
// garbled conversation as any other error.
func (c *conn) reply() (int, string, error) {
	code, msg, err := c.r.ReadResponse(0)
	var te *textproto.Error
	if errors.As(err, &te) || (err == nil && code >= 400) {
		return code, msg, toSMTPError(code, msg)
	}
	if err != nil {
		var pe textproto.ProtocolError
		if errors.As(err, &pe) {
			return 0, "", fmt.Errorf("upstream: garbled reply: %v", pe)
		}
		return 0, "", err
	}
	return code, msg, nil
}

// expect reads a reply and wants the given code.
func (c *conn) expect(want int) (string, error) {
	code, msg, err := c.reply()
	if err != nil {
		return msg, err
	}
	if code != want {
		return msg, toSMTPError(code, msg)
	}
	return msg, nil
}

// cmd sends one command and reads its reply.
func (c *conn) cmd(want int, format string, args ...any) (string, error) {
	c.deadline()
	fmt.Fprintf(c.w, format+"\r\n", args...)
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	return c.expect(want)
}

// toSMTPError turns a reply into go-smtp's error type, reading the
// enhanced status code (RFC 3463) from the start of the text.
func toSMTPError(code int, msg string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: msg}
	if first, rest, ok := strings.Cut(msg, " "); ok {
		parts := strings.Split(first, ".")
		if len(parts) == 3 {
			var ec smtp.EnhancedCode
			good := true
			for i, p := range parts {
				n, err := strconv.Atoi(p)
				good = good && err == nil
				ec[i] = n
			}
			if good && ec[0] == code/100 {
				e.EnhancedCode, e.Message = ec, rest
			}
		}
	}
	return e
}

// hello greets with EHLO (HELO for a server that knows no EHLO) and keeps
// the extensions offered.
func (c *conn) hello(name string) error {
	msg, err := c.cmd(250, "EHLO %s", name)
	var se *smtp.SMTPError
	if errors.As(err, &se) && (se.Code == 500 || se.Code == 502) {
		c.ext = map[string]string{}
		_, err = c.cmd(250, "HELO %s", name)
		return err
	}
	if err != nil {
		return err
	}
	c.ext = map[string]string{}
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		c.ext[strings.ToUpper(k)] = v
	}
	return nil
}

func (c *conn) has(ext string) bool { _, ok := c.ext[ext]; return ok }

// startTLS upgrades the connection and greets again (RFC 3207: what the
// server offered before TLS no longer counts).
func (c *conn) startTLS(ctx context.Context, cfg *tls.Config, name string) error {
	if _, err := c.cmd(220, "STARTTLS"); err != nil {
		return err
	}
	tc := tls.Client(c.nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	*c = *newConn(tc, c.timeout)
	return c.hello(name)
}

// auth logs in with PLAIN, or LOGIN where the server offers only that.
func (c *conn) auth(user, pass string) error {
	mechs := strings.Fields(strings.ToUpper(c.ext["AUTH"]))
	login := false
	for _, m := range mechs {
		if m == "PLAIN" {
			login = false
			break
		}
		login = login || m == "LOGIN"
	}
	if login {
		if _, err := c.cmd(334, "AUTH LOGIN"); err != nil {
			return err
		}
		if _, err := c.cmd(334, "%s", base64.StdEncoding.EncodeToString([]byte(user))); err != nil {
			return err
		}
		_, err := c.cmd(235, "%s", base64.StdEncoding.EncodeToString([]byte(pass)))
		return err
	}
	_, err := c.cmd(235, "AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
	return err
}

// result of one transaction.
type result struct {
	rcptErrs []error
	err      error
	// replied is true once any reply to the transaction came back: a
	// failure before that on a reused connection means it had gone stale.
	replied bool
	// healthy is whether the connection can take another transaction.
	healthy bool
}

// send runs one transaction: MAIL, RCPT for each of to, DATA, pipelined
// when the server offers it, then the message.
func (c *conn) send(from string, to []string, msg io.WriterTo, opts *smtp.MailOptions) (res result) {
	mail, err := c.mailCommand(from, opts)
	if err != nil {
		return result{err: err, healthy: true} // nothing was sent
	}
	pipelined := c.has("PIPELINING")
	// replies holds the outcome of each command in order: nil for a 2xx or
	// 3xx, the *smtp.SMTPError of a refusal. Without PIPELINING every
	// command is answered before the next is written.
	replies := make([]error, 0, len(to)+2)
	pending := 0
	collect := func() error {
		if err := c.w.Flush(); err != nil {
			return err
		}
		for ; pending > 0; pending-- {
			_, _, err := c.reply()
			if err != nil && !isReply(err) {
				return err
			}
			res.replied = true
			replies = append(replies, err)
		}
		return nil
	}
	exchange := func(cmd string) error {
		c.w.WriteString(cmd)
		pending++
		if pipelined {
			return nil
		}
		return collect()
	}

	c.deadline()
	if err := exchange(mail); err != nil {
		return c.failed(res, err, "MAIL")
	}
	if !pipelined && replies[0] != nil {
		return c.reset(res, replies[0])
	}
	for _, rcpt := range to {
		if err := exchange("RCPT TO:<" + rcpt + ">\r\n"); err != nil {
			return c.failed(res, err, "RCPT")
		}
	}
	if !pipelined && firstNil(replies[1:]) < 0 {
		res.rcptErrs = replies[1:]
		return c.reset(res, firstErr(res.rcptErrs))
	}
	if err := exchange("DATA\r\n"); err != nil {
		return c.failed(res, err, "DATA")
	}
	if err := collect(); err != nil {
		return c.failed(res, err, "DATA")
	}
	mailErr, dataErr := replies[0], replies[len(replies)-1]
	rcptErrs := replies[1 : 1+len(to)]
	if firstErr(rcptErrs) != nil {
		res.rcptErrs = rcptErrs
	}
	noRcpt := firstNil(rcptErrs) < 0
	switch {
	case dataErr == nil && (mailErr != nil || noRcpt):
		// The server took DATA although nobody can receive: end the
		// message at once (RFC 2920 section 3.1), then reset.
		c.w.WriteString(".\r\n")
		if err := collectOne(c); err != nil {
			return c.failed(res, err, "DATA")
		}
		return c.reset(res, firstErr([]error{mailErr, firstErr(rcptErrs)}))
	case mailErr != nil:
		res.rcptErrs = nil
		return c.reset(res, mailErr)
	case noRcpt:
		return c.reset(res, firstErr(rcptErrs))
	case dataErr != nil:
		res.rcptErrs = nil
		return c.reset(res, dataErr)
	}
	if err := c.writeMessage(msg); err != nil {
		return c.failed(res, fmt.Errorf("writing message: %w", err), "DATA")
	}
	if _, _, err := c.reply(); err != nil {
		if !isReply(err) {
			// The whole message and its dot went out: the upstream may
			// have taken it (SPEC §4, honest replies).
			res = c.failed(res, err, "end of data")
			res.err = replyLost{res.err}
			return res
		}
		res.rcptErrs = nil
		res.err, res.healthy = err, true
		return res
	}
	res.healthy = true
	return res
}

// collectOne flushes and reads one reply, refusals included.
func collectOne(c *conn) error {
	if err := c.w.Flush(); err != nil {
		return err
	}
	_, _, err := c.reply()
	if isReply(err) {
		return nil
	}
	return err
}

// mailCommand is the MAIL FROM line with the parameters the upstream
// offers and the message needs.
func (c *conn) mailCommand(from string, opts *smtp.MailOptions) (string, error) {
	var b strings.Builder
	b.WriteString("MAIL FROM:<" + from + ">")
	if c.has("8BITMIME") {
		b.WriteString(" BODY=8BITMIME")
	}
	if opts != nil {
		if opts.Size > 0 && c.has("SIZE") {
			b.WriteString(" SIZE=" + strconv.FormatInt(opts.Size, 10))
		}
		if opts.UTF8 {
			if !c.has("SMTPUTF8") {
				return "", ErrNoSMTPUTF8
			}
			b.WriteString(" SMTPUTF8")
		}
		if opts.RequireTLS {
			if !c.has("REQUIRETLS") {
				return "", errors.New("upstream: the upstream does not offer REQUIRETLS")
			}
			b.WriteString(" REQUIRETLS")
		}
	}
	b.WriteString("\r\n")
	return b.String(), nil
}

// firstNil is the index of the first nil error, -1 when none is.
func firstNil(errs []error) int {
	for i, err := range errs {
		if err == nil {
			return i
		}
	}
	return -1
}

// failed ends a transaction whose conversation broke: the connection is
// not reused.
func (c *conn) failed(res result, err error, step string) result {
	res.rcptErrs = nil
	res.err = fmt.Errorf("upstream: %s: %w", step, err)
	c.nc.Close()
	res.healthy = false
	return res
}

// reset ends a refused transaction with RSET so the connection is clean.
func (c *conn) reset(res result, err error) result {
	res.err = err
	_, rerr := c.cmd(250, "RSET")
	res.healthy = rerr == nil
	return res
}

// writeMessage writes msg for DATA with its terminating dot, and
// flushes.
func (c *conn) writeMessage(msg io.WriterTo) error {
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	dw := newDotWriter(c.w)
	if _, err := msg.WriteTo(dw); err != nil {
		return err
	}
	if err := dw.Finish(); err != nil {
		return err
	}
	return c.w.Flush()
}

// ErrReplyLost means the connection broke after the whole message and
// its final dot were sent, before the upstream's reply came: the copy may
// have been delivered. Send does not try it again. Errors wrapping it
// also have a MaybeDelivered method, for callers that do not import this
// package.
var ErrReplyLost = errors.New("upstream: the reply to the message was lost")

type replyLost struct{ err error }

func (e replyLost) Error() string {
	return "the upstream's reply to the message was lost; the copy may have been delivered: " + e.err.Error()
}
func (e replyLost) Unwrap() []error      { return []error{ErrReplyLost, e.err} }
func (e replyLost) MaybeDelivered() bool { return true }

// ErrNoSMTPUTF8 means the message needs SMTPUTF8 (RFC 6531) and the
// upstream does not offer it.
var ErrNoSMTPUTF8 = errors.New("upstream: the upstream does not support SMTPUTF8")

// quit says goodbye and closes; a failure changes nothing.
func (c *conn) quit() {
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	c.w.WriteString("QUIT\r\n")
	if c.w.Flush() == nil {
		c.r.ReadResponse(221)
	}
	c.nc.Close()
}
