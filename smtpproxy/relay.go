package smtpproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/emersion/go-smtp"

	"optinproxy/optin"
)

// relay hands a received message to the upstream and returns the reply
// to DATA (SPEC §4): 250 only when the upstream accepted every copy due,
// the upstream's own 5xx when it refused them all, 451 otherwise.
func (s *Server) relay(x *session, raw []byte) error {
	msg, err := parseMessage(raw)
	if err != nil {
		s.log.Info("malformed message", "remote", x.remote.String(), "err", err)
		s.metrics.messages.WithLabelValues("rejected").Inc()
		return s.reply(errBadMessage)
	}
	qid := newID()
	msg.stamp(qid, s.opts.Hostname, x.conn.Hostname(), x.remote.String(), x.protocol(), s.opts.Now())
	log := s.log.With("qid", qid, "user", x.userName(), "remote", x.remote.String())

	ctx, cancel := context.WithTimeout(s.relays, s.opts.UpstreamTimeout)
	defer cancel()

	rcpts := x.tx.rcpts
	addrs := make([]optin.Address, len(rcpts))
	for i, r := range rcpts {
		addrs[i] = r.addr
	}
	done, err := s.opts.Deliveries.Delivered(ctx, msg.key, addrs)
	if err != nil {
		log.Error("dedup lookup failed", "err", err)
		s.metrics.messages.WithLabelValues("tempfail").Inc()
		return s.reply(errInternal)
	}
	var due []recipient
	for i, r := range rcpts {
		if done[i] {
			s.metrics.recipients.WithLabelValues("duplicate").Inc()
			continue
		}
		due = append(due, r)
	}
	earlier := len(rcpts) - len(due)
	if len(due) == 0 {
		log.Info("message already relayed", "message_id", msg.id, "recipients", len(rcpts))
		s.metrics.messages.WithLabelValues("relayed").Inc()
		return s.reply(&smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0},
			Message: fmt.Sprintf("Ok: %s already relayed to all %d recipients", qid, len(rcpts))})
	}

	out := s.send(ctx, log, x, msg, due)
	switch {
	case out.err != nil:
		s.metrics.messages.WithLabelValues("tempfail").Inc()
		return s.reply(out.err)
	case len(out.failed) == 0:
		if earlier > 0 {
			// Finishing an earlier partial delivery: a further retry
			// must find every copy done.
			s.remember(ctx, log, msg, out.accepted)
		}
		log.Info("message relayed", "message_id", msg.id, "relayed", len(due), "earlier", earlier, "size", len(raw))
		s.metrics.messages.WithLabelValues("relayed").Inc()
		s.metrics.recipients.WithLabelValues("relayed").Add(float64(len(due)))
		text := fmt.Sprintf("Ok: queued as %s; relayed %d, blocked 0", qid, len(due))
		if earlier > 0 {
			text += fmt.Sprintf(" (%d relayed earlier)", earlier)
		}
		return s.reply(&smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: text})
	case len(out.accepted) == 0:
		return s.reply(s.refusedAll(log, msg, out.failed))
	}
	// Some copies went out, some did not: remember the delivered ones so
	// that the client's retry sends only the rest, then ask for a retry.
	s.remember(ctx, log, msg, out.accepted)
	log.Warn("message partly relayed", "message_id", msg.id, "relayed", len(out.accepted), "failed", len(out.failed))
	s.metrics.messages.WithLabelValues("partial").Inc()
	s.metrics.recipients.WithLabelValues("relayed").Add(float64(len(out.accepted)))
	s.metrics.recipients.WithLabelValues("failed").Add(float64(len(out.failed)))
	return s.reply(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
		Message: fmt.Sprintf("Relayed to %d of %d recipients; the upstream refused the others (%s); retry: the relayed ones will not get it twice",
			len(out.accepted), len(due), summarize(out.failed))})
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
	failed   []failure
	// err is set when nothing went out and the reply is already known.
	err error
}

type failure struct {
	rcpt recipient
	err  *smtp.SMTPError
}

// send hands msg to the upstream in one transaction for all due
// recipients. Later stages split this into a copy per recipient when a
// personal link goes in; the outcome keeps per-recipient results for that.
func (s *Server) send(ctx context.Context, log *slog.Logger, x *session, msg *message, due []recipient) outcome {
	to := make([]string, len(due))
	from, utf8 := wireAddress(x.tx.from)
	for i, r := range due {
		var u bool
		to[i], u = wireAddress(r.raw)
		utf8 = utf8 || u
	}
	opts := &smtp.MailOptions{UTF8: utf8, RequireTLS: x.tx.mailOpts.RequireTLS, Size: msg.size()}

	start := s.opts.Now()
	rcptErrs, err := s.opts.Upstream.Send(ctx, from, to, msg, opts)
	elapsed := s.opts.Now().Sub(start).Seconds()

	var se *smtp.SMTPError
	switch {
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
	var b strings.Builder
	for i, f := range failed {
		if i > 0 {
			b.WriteString("; ")
		}
		if i == 10 {
			fmt.Fprintf(&b, "and %d more", len(failed)-i)
			break
		}
		fmt.Fprintf(&b, "<%s>: %d %s", f.rcpt.raw, f.err.Code, oneLine(f.err.Message))
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
