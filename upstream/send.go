package upstream

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// result of one transaction.
type result struct {
	rcptErrs []error
	err      error
	// replied is true once any reply to the transaction came back: a
	// failure before that on a reused connection may mean it had gone
	// stale.
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
	// MAIL, each RCPT and DATA: sized once rather than grown.
	n := len(to) + 2
	b := &batch{c: c, pipelined: c.has("PIPELINING"), waiting: make([]wanted, 0, n), replies: make([]error, 0, n)}
	defer func() { res.replied = b.replied }()

	if err := b.add("MAIL", mail, 250); err != nil {
		return c.failed(res, err, "MAIL")
	}
	if !b.pipelined && b.replies[0] != nil {
		return c.reset(res, b.replies[0])
	}
	for _, rcpt := range to {
		if err := b.add("RCPT", "RCPT TO:<"+rcpt+">\r\n", 250); err != nil {
			return c.failed(res, err, "RCPT")
		}
	}
	if !b.pipelined && firstNil(b.replies[1:]) < 0 {
		res.rcptErrs = b.replies[1:]
		return c.reset(res, firstErr(res.rcptErrs))
	}
	if err := b.add("DATA", "DATA\r\n", 354); err != nil {
		return c.failed(res, err, "DATA")
	}
	if err := b.collect(); err != nil {
		return c.failed(res, err, "envelope")
	}
	res, done := c.refused(res, b.replies, len(to))
	if done {
		return res
	}
	if err := c.writeMessage(msg); err != nil {
		return c.failed(res, fmt.Errorf("writing message: %w", err), "DATA")
	}
	return c.endOfData(res)
}

// refused handles the envelope's refusals once every reply is in: done
// is true when the message must not be sent.
func (c *conn) refused(res result, replies []error, rcpts int) (result, bool) {
	mailErr, dataErr := replies[0], replies[len(replies)-1]
	rcptErrs := replies[1 : 1+rcpts]
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
			return c.failed(res, err, "DATA"), true
		}
		return c.reset(res, firstErr([]error{mailErr, firstErr(rcptErrs)})), true
	case mailErr != nil:
		res.rcptErrs = nil
		return c.reset(res, mailErr), true
	case noRcpt:
		return c.reset(res, firstErr(rcptErrs)), true
	case dataErr != nil:
		res.rcptErrs = nil
		return c.reset(res, dataErr), true
	}
	return res, false
}

// endOfData reads the reply to the final dot, within the longer limit
// for it. Anything but a reply (a broken connection, a garbled or
// misplaced reply) leaves the copy maybe delivered: the whole message
// and its dot went out.
func (c *conn) endOfData(res result) result {
	code, _, err := c.replyWithin(c.dotTimeout)
	if err == nil && code/100 != 2 {
		err = fmt.Errorf("%w: %d in reply to the end of the message", ErrProtocol, code)
	}
	switch {
	case isReply(err):
		res.rcptErrs = nil
		res.err, res.healthy = err, true
	case err != nil:
		res = c.failed(res, err, "end of data")
		res.err = replyLost{res.err}
	default:
		res.healthy = true
	}
	return res
}

// batch writes commands and reads their replies: all at once with
// PIPELINING, else one by one.
type batch struct {
	c         *conn
	pipelined bool
	waiting   []wanted // written, not yet answered
	replies   []error  // one per answered command: nil or the refusal
	replied   bool     // any reply came
}

// wanted is a command and the reply it needs: 354 exactly, or (for
// 250) any 2xx.
type wanted struct {
	name string
	code int
}

func (b *batch) add(name, line string, code int) error {
	b.c.w.WriteString(line)
	b.waiting = append(b.waiting, wanted{name, code})
	if b.pipelined {
		return nil
	}
	return b.collect()
}

// collect flushes and reads the replies to the commands waiting. A
// refusal is recorded; a reply that does not fit its command (a 3xx to
// RCPT, a 250 to DATA) breaks the conversation: whatever the upstream
// thinks is going on, it is not this transaction.
func (b *batch) collect() error {
	if err := b.c.w.Flush(); err != nil {
		return err
	}
	for _, w := range b.waiting {
		code, _, err := b.c.reply()
		if err != nil && !isReply(err) {
			return err
		}
		b.replied = true
		if err == nil && (code != w.code && (w.code != 250 || code/100 != 2)) {
			return fmt.Errorf("%w: %d in reply to %s", ErrProtocol, code, w.name)
		}
		b.replies = append(b.replies, err)
	}
	b.waiting = b.waiting[:0]
	return nil
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
				return "", ErrNoRequireTLS
			}
			b.WriteString(" REQUIRETLS")
		}
	}
	b.WriteString("\r\n")
	return b.String(), nil
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
	dw := newDotWriter(c.w)
	if _, err := msg.WriteTo(dw); err != nil {
		return err
	}
	if err := dw.Finish(); err != nil {
		return err
	}
	return c.w.Flush()
}

func isReply(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se)
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

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
