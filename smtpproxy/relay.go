package smtpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"

	"optinproxy/optin"
)

// relay decides the fate of each recipient of a received message, hands
// the allowed copies to the upstream, records every decision, and returns
// the reply to DATA (SPEC §4): 250 only when the upstream accepted every
// copy due, 550 when every recipient is blocked, the upstream's own 5xx
// when it refused them all, 451 otherwise, and 451 4.3.0 when the store
// cannot be asked (fail closed).
func (s *Server) relay(x *session, raw []byte) error {
	msg, err := parseMessage(raw)
	if err != nil {
		s.log.Info("malformed message", "remote", x.remote.String(), "err", err)
		s.metrics.messages.WithLabelValues("rejected").Inc()
		return s.reply(errBadMessage)
	}
	p, err := s.purposeOf(x, msg)
	if err != nil && s.opts.Ledger != nil {
		s.log.Info("message refused for its purpose", "remote", x.remote.String(), "user", x.userName(), "err", err)
		s.metrics.messages.WithLabelValues("rejected").Inc()
		return s.reply(err)
	}
	qid := newID()
	msg.stamp(qid, s.opts.Hostname, x.conn.Hostname(), x.remote.String(), x.protocol(), s.opts.Now())
	log := s.log.With("qid", qid, "user", x.userName(), "remote", x.remote.String())

	ctx, cancel := context.WithTimeout(s.relays, s.opts.UpstreamTimeout)
	defer cancel()

	vs, err := s.decide(ctx, p, msg, x.tx.rcpts)
	if err != nil {
		log.Error("consent store lookup failed; nothing relayed", "err", err)
		s.metrics.messages.WithLabelValues("tempfail").Inc()
		return s.reply(errStoreDown)
	}
	var (
		due     []recipient
		blocked []verdict
		earlier int
		monitor int // blocked, but relayed in monitor mode
	)
	for _, v := range vs {
		switch {
		case v.delivered:
			earlier++
			s.metrics.recipients.WithLabelValues("duplicate").Inc()
		case v.decision.Allow:
			due = append(due, v.rcpt)
		case s.opts.Monitor:
			due = append(due, v.rcpt)
			monitor++
		default:
			blocked = append(blocked, v)
		}
	}
	// The receipts of every recipient decided now, the RCPT refusals
	// included; relayed ones are added once the upstream took them.
	receipts := s.refusalReceipts(x, msg.id, qid)
	x.tx.refused = nil
	for _, v := range blocked {
		receipts = append(receipts, s.receipt(x, p, msg, qid, v, false, nil))
	}
	s.metrics.recipients.WithLabelValues("blocked").Add(float64(len(blocked)))

	if len(due) == 0 && earlier == 0 {
		if err := s.record(ctx, log, receipts); err != nil {
			return s.reply(errStoreDown)
		}
		log.Info("message blocked", "message_id", msg.id, "purpose", p.Name, "blocked", len(blocked))
		s.metrics.messages.WithLabelValues("blocked").Inc()
		return s.reply(blockedReply(p, blocked))
	}
	if len(due) == 0 {
		if err := s.record(ctx, log, receipts); err != nil {
			return s.reply(errStoreDown)
		}
		log.Info("message already relayed", "message_id", msg.id, "recipients", earlier)
		s.metrics.messages.WithLabelValues("relayed").Inc()
		return s.reply(&smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0},
			Message: fmt.Sprintf("Ok: %s already relayed to all %d allowed recipients; blocked %d", qid, earlier, len(blocked))})
	}

	out := s.sendCopies(ctx, log, x, p, msg, due)
	if out.err == nil && len(out.accepted) == 0 {
		return s.reply(s.refusedAll(log, msg, out.failed))
	}
	if out.err != nil {
		// Nothing went out: the client keeps the message and retries,
		// and the retry decides again; its receipts are written then.
		if out.err.Code >= 500 {
			s.metrics.messages.WithLabelValues("rejected").Inc()
		} else {
			s.metrics.messages.WithLabelValues("tempfail").Inc()
		}
		return s.reply(out.err)
	}

	// Copies went out. Every delivered copy is marked with its receipt,
	// in one write, so that the client's retry (a partial failure, or a
	// reply lost on its way back, or a proxy gone before it) delivers
	// only the rest (SPEC §2).
	mark := &optin.Delivery{Message: msg.key, Until: s.opts.Now().Add(s.opts.DedupWindow)}
	if s.opts.Ledger == nil {
		s.remember(ctx, log, msg, out.accepted)
	}
	byAddr := make(map[optin.Address]verdict, len(vs))
	for _, v := range vs {
		byAddr[v.rcpt.addr] = v
	}
	uncertain := 0
	for _, a := range out.accepted {
		r := s.receipt(x, p, msg, qid, byAddr[a], true, mark)
		if out.uncertain[a] {
			r.Details.Uncertain = true
			uncertain++
		}
		receipts = append(receipts, r)
	}
	if err := s.record(ctx, log, receipts); err != nil {
		log.Error("receipts and delivered marks of relayed copies not stored; the client's retry may send them twice", "relayed", len(out.accepted))
	}
	s.metrics.recipients.WithLabelValues("relayed").Add(float64(len(out.accepted)))

	if len(out.failed) > 0 {
		log.Warn("message partly relayed", "message_id", msg.id, "relayed", len(out.accepted), "failed", len(out.failed))
		s.metrics.messages.WithLabelValues("partial").Inc()
		s.metrics.recipients.WithLabelValues("failed").Add(float64(len(out.failed)))
		return s.reply(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
			Message: fmt.Sprintf("Relayed to %d of %d recipients; the upstream refused the others (%s); retry: the relayed ones will not get it twice",
				len(out.accepted), len(due), summarize(out.failed))})
	}
	if len(blocked) > 0 {
		s.sendDSN(ctx, log, x, p, msg, qid, blocked)
	}
	log.Info("message relayed", "message_id", msg.id, "purpose", p.Name, "relayed", len(due), "blocked", len(blocked),
		"monitor_blocked", monitor, "earlier", earlier, "size", len(raw))
	s.metrics.messages.WithLabelValues("relayed").Inc()
	text := fmt.Sprintf("Ok: queued as %s; relayed %d, blocked %d", qid, len(due), len(blocked))
	if earlier > 0 {
		text += fmt.Sprintf(" (%d relayed earlier)", earlier)
	}
	if uncertain > 0 {
		text += fmt.Sprintf("; the upstream's connection broke after %d of the copies were sent, before it confirmed them: they may have been delivered, and will not be sent again", uncertain)
	}
	if monitor > 0 {
		text += fmt.Sprintf("; monitor mode: %d would have been blocked", monitor)
	}
	return s.reply(&smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: text})
}

// receipt is the receipt of one recipient decided at DATA.
func (s *Server) receipt(x *session, p optin.Purpose, msg *message, qid string, v verdict, relayed bool, mark *optin.Delivery) optin.Receipt {
	r := optin.Receipt{Subject: v.rcpt.addr, Purpose: p.Name, Actor: x.actor(), Time: s.opts.Now(),
		Decision: v.decision, Relayed: relayed, Delivered: mark,
		Details: optin.ReceiptDetails{MessageID: msg.id, QueueID: qid, ConsentEvent: v.consentEvent}}
	if relayed && !v.decision.Allow {
		r.Details.Mode = "monitor"
	}
	return r
}

func (s *Server) remember(ctx context.Context, log *slog.Logger, msg *message, accepted []optin.Address) {
	until := s.opts.Now().Add(s.opts.DedupWindow)
	if err := s.opts.Deliveries.Remember(ctx, msg.key, accepted, until); err != nil {
		log.Error("remembering delivered copies failed; a retry may duplicate them", "err", err)
	}
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

type failure struct {
	rcpt recipient
	err  *smtp.SMTPError
}

// sendCopies hands the due copies to the upstream: one transaction for
// all, or, when the purpose injects personal links, a copy per recipient
// (at most copyParallel at once), whose outcomes are merged.
func (s *Server) sendCopies(ctx context.Context, log *slog.Logger, x *session, p optin.Purpose, msg *message, due []recipient) outcome {
	if s.opts.Personalize == nil || !p.Unsubscribe {
		return s.send(ctx, log, x, msg, msg, due)
	}
	outs := make([]outcome, len(due))
	var wg sync.WaitGroup
	sem := make(chan struct{}, copyParallel)
	for i, r := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body, err := s.opts.Personalize(p, r.addr, msg.header.Copy(), msg.body)
			if err != nil {
				log.Error("personalizing a copy failed", "err", err)
				outs[i] = outcome{err: errInternal}
				return
			}
			outs[i] = s.send(ctx, log, x, msg, bytesWriter(body), []recipient{r})
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

// copyParallel bounds the per-recipient copies of one message in flight.
const copyParallel = 8

// send hands body to the upstream in one transaction for the due
// recipients of msg.
func (s *Server) send(ctx context.Context, log *slog.Logger, x *session, msg *message, body io.WriterTo, due []recipient) outcome {
	to := make([]string, len(due))
	from, utf8 := wireAddress(x.tx.from)
	for i, r := range due {
		var u bool
		to[i], u = wireAddress(r.raw)
		utf8 = utf8 || u
	}
	opts := &smtp.MailOptions{UTF8: utf8, RequireTLS: x.tx.mailOpts.RequireTLS, Size: sizeOf(body)}

	start := s.opts.Now()
	rcptErrs, err := s.opts.Upstream.Send(ctx, from, to, body, opts)
	elapsed := s.opts.Now().Sub(start).Seconds()

	var se *smtp.SMTPError
	var md interface{ MaybeDelivered() bool }
	switch {
	case errors.As(err, &md) && md.MaybeDelivered():
		s.metrics.upstream.WithLabelValues("reply_lost").Observe(elapsed)
		log.Warn("the upstream's reply to a sent message was lost; treating the copies as delivered", "recipients", len(due), "err", err)
		out := outcome{uncertain: map[optin.Address]bool{}}
		for _, r := range due {
			out.accepted = append(out.accepted, r.addr)
			out.uncertain[r.addr] = true
		}
		return out
	case err == nil:
	case errors.As(err, &se) && len(rcptErrs) > 0:
		// Every recipient refused at RCPT: report them one by one below.
	case errors.As(err, &se) && se.Code >= 500:
		s.metrics.upstream.WithLabelValues("permfail").Observe(elapsed)
		log.Warn("upstream refused message", "code", se.Code, "detail", se.Message)
		s.metrics.recipients.WithLabelValues("refused").Add(float64(len(due)))
		return outcome{err: upstreamReply(se)}
	case errors.As(err, &se):
		s.metrics.upstream.WithLabelValues("tempfail").Observe(elapsed)
		log.Warn("upstream deferred message", "code", se.Code, "detail", se.Message)
		return outcome{err: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
			Message: "Upstream mailer deferred the message (" + se.Error() + "); nothing was relayed, try again later"}}
	case strings.Contains(err.Error(), "SMTPUTF8"):
		s.metrics.upstream.WithLabelValues("permfail").Observe(elapsed)
		return outcome{err: errNoSMTPUTF8}
	default:
		s.metrics.upstream.WithLabelValues("tempfail").Observe(elapsed)
		log.Warn("upstream unreachable", "err", err)
		return outcome{err: errUpstreamDown}
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
	result := "ok"
	if len(out.failed) > 0 {
		result = "partial"
	}
	s.metrics.upstream.WithLabelValues(result).Observe(elapsed)
	return out
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

// refusedAll is the reply when the upstream refused every recipient at
// RCPT: a 5xx only when every refusal was permanent.
func (s *Server) refusedAll(log *slog.Logger, msg *message, failed []failure) error {
	log.Warn("upstream refused every recipient", "message_id", msg.id, "recipients", len(failed))
	perm := true
	for _, f := range failed {
		perm = perm && f.err.Code >= 500
	}
	if !perm {
		s.metrics.messages.WithLabelValues("tempfail").Inc()
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
			Message: "Upstream mailer refused the recipients (" + summarize(failed) + "); nothing was relayed, try again later"}
	}
	s.metrics.messages.WithLabelValues("rejected").Inc()
	s.metrics.recipients.WithLabelValues("refused").Add(float64(len(failed)))
	first := failed[0].err
	return &smtp.SMTPError{Code: first.Code, EnhancedCode: first.EnhancedCode,
		Message: "Upstream mailer refused every recipient: " + summarize(failed)}
}

// upstreamReply passes an upstream's permanent refusal on to the client,
// marked as the upstream's.
func upstreamReply(se *smtp.SMTPError) *smtp.SMTPError {
	return &smtp.SMTPError{Code: se.Code, EnhancedCode: se.EnhancedCode, Message: "Upstream: " + oneLine(se.Message)}
}

// summarize lists refused recipients with their codes. The client gave
// these addresses, so naming them back is no leak.
func summarize(failed []failure) string {
	return listRecipients(len(failed), func(i int) string {
		f := failed[i]
		return fmt.Sprintf("<%s>: %d %s", f.rcpt.raw, f.err.Code, oneLine(f.err.Message))
	})
}

// listRecipients joins the first ten of n items for a reply, and says
// how many more there are: a reply line must stay short.
func listRecipients(n int, item func(i int) string) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("; ")
		}
		if i == 10 {
			fmt.Fprintf(&b, "and %d more", n-i)
			break
		}
		b.WriteString(item(i))
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
