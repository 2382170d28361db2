package smtpproxy

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"

	"optinproxy/optin"
)

// relay carries a received message through the pipeline: decide the
// fate of each recipient, send the allowed copies, record every decision,
// answer. The reply to DATA is given only after the upstream answered,
// and never before the store had the receipts of what went out; when the
// store cannot be asked, nothing is relayed (fail closed).
func (s *Server) relay(sess *session, raw []byte) error {
	tx := &sess.tx
	if err := s.applyUnsubscribes(tx); err != nil {
		return s.reply(err)
	}
	if len(tx.rcpts) == 0 {
		return s.reply(unsubscribed(len(tx.unsubscribes)))
	}
	if err := s.open(sess, raw); err != nil {
		s.metrics.messages.WithLabelValues(resultRejected).Inc()
		return s.reply(err)
	}
	ctx, cancel := context.WithTimeout(s.relays, s.opts.UpstreamTimeout)
	defer cancel()

	f, err := s.decide(ctx, tx)
	if err != nil {
		tx.log.Error("consent store lookup failed; nothing relayed", "err", err)
		s.metrics.messages.WithLabelValues(resultTempfail).Inc()
		return s.reply(errStoreDown)
	}
	var out outcome
	if len(f.due) > 0 {
		out = s.sendCopies(ctx, tx, f.due)
	}
	stored := s.recordMessage(ctx, tx, f, out)
	result, r := answer(tx, f, out, stored)
	s.account(tx, f, out, result, len(raw))
	return s.reply(r)
}

// open reads the message of tx: its header and purpose, the queue id, and
// the trace fields the proxy adds. It returns the reply refusing a
// message that cannot be relayed.
func (s *Server) open(sess *session, raw []byte) error {
	tx := &sess.tx
	msg, err := parseMessage(raw)
	if err != nil {
		// A headerError names the fault, never the line.
		s.log.Info("malformed message", "remote", sess.remote.String(), "err", err)
		return errBadMessage
	}
	p, err := s.purposeOf(sess, msg)
	if err != nil {
		s.log.Info("message refused for its purpose", "remote", sess.remote.String(), "user", sess.userName(), "err", err)
		return err
	}
	tx.msg, tx.purpose, tx.qid = msg, p, newID()
	msg.stamp(tx.qid, s.opts.Hostname, sess.conn.Hostname(), sess.remote.String(), sess.protocol(), s.opts.Now())
	tx.log = s.log.With("qid", tx.qid, "user", sess.userName(), "remote", sess.remote.String())
	return nil
}

// account logs a message's outcome and counts it.
func (s *Server) account(tx *transaction, f fates, out outcome, result string, size int) {
	s.metrics.messages.WithLabelValues(result).Inc()
	s.metrics.recipients.WithLabelValues("blocked").Add(float64(len(f.blocked)))
	s.metrics.recipients.WithLabelValues("duplicate").Add(float64(f.earlier))
	s.metrics.recipients.WithLabelValues("relayed").Add(float64(len(out.accepted)))
	s.metrics.recipients.WithLabelValues("failed").Add(float64(len(out.failed)))
	if s.opts.Sent != nil && len(out.accepted) > 0 {
		s.opts.Sent(tx.fromDomain(), len(out.accepted))
	}
	args := []any{"message_id", tx.msg.id, "purpose", tx.purpose.Name, "result", result,
		"relayed", len(out.accepted), "blocked", len(f.blocked), "earlier", f.earlier, "size", size}
	if f.monitor > 0 {
		args = append(args, "monitor_blocked", f.monitor)
	}
	if len(out.failed) > 0 {
		args = append(args, "failed", len(out.failed))
	}
	if result == resultPartial {
		tx.log.Warn("message partly relayed", args...)
		return
	}
	tx.log.Info("message "+result, args...)
}

// outcome of handing the due copies to the upstream.
type outcome struct {
	accepted []optin.Address
	// uncertain are the accepted copies whose upstream reply was lost
	// after the message was sent: they may have been delivered, and are
	// treated as delivered rather than sent twice.
	uncertain map[optin.Address]bool
	failed    []failure
	// err is set when nothing went out and the reply is already known.
	err *smtp.SMTPError
}

// sent reports whether any copy went out.
func (o outcome) sent() bool { return len(o.accepted) > 0 }

type failure struct {
	rcpt recipient
	err  *smtp.SMTPError
}

// sendCopies hands the due copies to the upstream: one transaction for
// all, or, when the purpose injects personal links, a copy per recipient
// (at most copyParallel at once), whose outcomes are merged.
func (s *Server) sendCopies(ctx context.Context, tx *transaction, due []recipient) outcome {
	if s.opts.Personalize == nil || !tx.purpose.Unsubscribe {
		body, err := s.finish(tx, tx.msg, false, false)
		if err != nil {
			tx.log.Error("preparing the message failed", "err", logText(err.Error()))
			return outcome{err: errInternal}
		}
		return s.send(ctx, tx, body, due)
	}
	outs := make([]outcome, len(due))
	var wg sync.WaitGroup
	// A large message's copies go one at a time, so that memory stays
	// within a few times its size however many recipients it has.
	parallel := copyParallel
	if len(tx.msg.body) > largeMessage {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	for i, r := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body, err := s.opts.Personalize(tx.purpose, r.addr, tx.msg.key, tx.msg.header, tx.msg.body)
			if err == nil {
				body, err = s.finish(tx, body, true, i == 0)
			}
			if err != nil {
				tx.log.Error("personalizing a copy failed", "err", logText(err.Error()))
				outs[i] = outcome{err: errInternal}
				return
			}
			outs[i] = s.send(ctx, tx, body, []recipient{r})
		})
	}
	wg.Wait()
	var out outcome
	for i, o := range outs {
		out.accepted = append(out.accepted, o.accepted...)
		out.failed = append(out.failed, o.failed...)
		for a := range o.uncertain {
			if out.uncertain == nil {
				out.uncertain = map[optin.Address]bool{}
			}
			out.uncertain[a] = true
		}
		if o.err != nil {
			out.failed = append(out.failed, failure{rcpt: due[i], err: o.err})
		}
	}
	return out
}

// bytesWriter writes the same bytes each time: the upstream may write
// a copy twice (a retry on a stale pooled connection).
type bytesWriter []byte

func (b bytesWriter) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// copyParallel bounds the per-recipient copies of one message in flight;
// a message over largeMessage bytes has one in flight.
const (
	copyParallel = 8
	largeMessage = 1 << 20
)

// send hands body to the upstream in one transaction for the due
// recipients of tx.
func (s *Server) send(ctx context.Context, tx *transaction, body io.WriterTo, due []recipient) outcome {
	to := make([]string, len(due))
	from, utf8 := wireAddress(tx.from)
	for i, r := range due {
		var u bool
		to[i], u = wireAddress(r.raw)
		utf8 = utf8 || u
	}
	opts := &smtp.MailOptions{UTF8: utf8, RequireTLS: tx.mailOpts.RequireTLS, Size: sizeOf(body)}

	start := s.opts.Now()
	rcptErrs, err := s.opts.Upstream.Send(ctx, from, to, body, opts)
	elapsed := s.opts.Now().Sub(start).Seconds()
	if err != nil {
		if out, done := s.sendFailed(tx, err, len(rcptErrs) > 0, due, elapsed); done {
			return out
		}
	}

	var out outcome
	for i, r := range due {
		if i < len(rcptErrs) && rcptErrs[i] != nil {
			var re *smtp.SMTPError
			if !errors.As(rcptErrs[i], &re) {
				re = errUpstreamDown
			}
			out.failed = append(out.failed, failure{rcpt: r, err: re})
			continue
		}
		out.accepted = append(out.accepted, r.addr)
	}
	if len(out.failed) > 0 {
		s.metrics.recipients.WithLabelValues("refused").Add(float64(len(out.failed)))
		s.observeSend("partial", elapsed)
	} else {
		s.observeSend("ok", elapsed)
	}
	return out
}

func (s *Server) observeSend(result string, seconds float64) {
	s.metrics.upstream.WithLabelValues(result).Observe(seconds)
}

// sendFailed gives the outcome of a copy the upstream did not take, and
// done; done is false when every recipient was refused at RCPT, which
// the caller reports one by one. Apart from send, so that a copy that
// went out does not pay for the error values errors.As needs.
func (s *Server) sendFailed(tx *transaction, err error, rcptRefused bool, due []recipient, elapsed float64) (outcome, bool) {
	var (
		se    *smtp.SMTPError
		md    interface{ MaybeDelivered() bool }
		lacks interface{ Lacks() string }
		busy  interface{ Busy() bool }
	)
	switch {
	case errors.As(err, &md) && md.MaybeDelivered():
		s.observeSend("reply_lost", elapsed)
		tx.log.Warn("the upstream's reply to a sent message was lost; treating the copies as delivered", "recipients", len(due), "err", logText(err.Error()))
		out := outcome{uncertain: map[optin.Address]bool{}}
		for _, r := range due {
			out.accepted = append(out.accepted, r.addr)
			out.uncertain[r.addr] = true
		}
		return out, true
	case errors.As(err, &se) && rcptRefused:
		// Every recipient refused at RCPT: reported one by one.
		return outcome{}, false
	case errors.As(err, &se) && se.Code >= 500:
		s.observeSend("permfail", elapsed)
		tx.log.Warn("upstream refused message", "code", se.Code, "detail", logText(se.Message))
		s.metrics.recipients.WithLabelValues("refused").Add(float64(len(due)))
		return outcome{err: upstreamRefused(se)}, true
	case errors.As(err, &se):
		s.observeSend("tempfail", elapsed)
		tx.log.Warn("upstream deferred message", "code", se.Code, "detail", logText(se.Message))
		return outcome{err: upstreamDeferred(se)}, true
	case errors.As(err, &busy) && busy.Busy():
		s.observeSend("tempfail", elapsed)
		tx.log.Warn("every upstream connection stayed busy; raise upstream.pool_size if the upstream allows more", "err", logText(err.Error()))
		return outcome{err: errUpstreamBusy}, true
	case errors.As(err, &lacks):
		s.observeSend("permfail", elapsed)
		tx.log.Warn("upstream lacks an extension the message needs", "extension", lacks.Lacks())
		return outcome{err: upstreamLacks(lacks.Lacks())}, true
	}
	s.observeSend("tempfail", elapsed)
	tx.log.Warn("upstream unreachable", "err", logText(err.Error()))
	return outcome{err: errUpstreamDown}, true
}

// wireAddress is an envelope address as it goes upstream: as the client
// wrote it, but with an internationalized domain in its ASCII (punycode)
// form, so that only a non-ASCII local part needs SMTPUTF8 (RFC 6531) of
// the upstream.
func wireAddress(raw string) (string, bool) {
	if !hasNonASCII(raw) {
		return raw, false
	}
	at := strings.LastIndexByte(raw, '@')
	a, err := optin.ParseAddress(raw)
	if at < 0 || err != nil || hasNonASCII(raw[:at]) || a.ASCIIDomain() == "" {
		return raw, true
	}
	return raw[:at+1] + a.ASCIIDomain(), false
}
