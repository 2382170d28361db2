package smtpproxy

import (
	"context"

	"github.com/emersion/go-smtp"
)

// sendDSN tells the envelope sender which recipients of a relayed
// message were blocked, when smtp.blocked_dsn is on. It goes
// through the upstream with the null reverse path, so that it can never
// bounce back (RFC 3464, RFC 5321 section 4.5.5). Failing to send it
// changes nothing for the message, which is relayed: it is logged and
// counted.
//
// Only a sender in the authenticated user's from_domains gets one: the
// proxy would otherwise mail, unasked, whatever address a client names,
// and tell it which recipients lack consent.
func (s *Server) sendDSN(ctx context.Context, tx *transaction, blocked []verdict) {
	log, msg := tx.log, tx.msg
	if !s.opts.BlockedDSN || tx.from == "" || s.opts.Monitor {
		return
	}
	if !tx.user.mayGetDSN(tx.from) {
		log.Info("no DSN for blocked recipients: the client has no from_domains to send one to", "message_id", msg.id, "blocked", len(blocked))
		return
	}
	in := dsnInput{Hostname: s.opts.Hostname, QueueID: tx.qid, Arrival: s.opts.Now(), Now: s.opts.Now(),
		Sender: tx.from, MessageID: msg.id, Purpose: tx.purpose.Name, Header: msg.header}
	for _, v := range blocked {
		in.Blocked = append(in.Blocked, dsnRecipient{Address: v.rcpt.raw, Reason: string(v.decision.Reason)})
	}
	raw, err := buildDSN(in)
	if err != nil {
		log.Error("building a DSN failed", "err", err)
		s.metrics.dsns.WithLabelValues("failed").Inc()
		return
	}
	to, utf8 := wireAddress(tx.from)
	utf8 = utf8 || hasNonASCII(string(raw))
	rcptErrs, err := s.opts.Upstream.Send(ctx, "", []string{to}, bytesWriter(raw), &smtp.MailOptions{UTF8: utf8, Size: int64(len(raw))})
	if err == nil && len(rcptErrs) > 0 && rcptErrs[0] != nil {
		err = rcptErrs[0]
	}
	if err != nil {
		log.Warn("sending a DSN for blocked recipients failed", "blocked", len(blocked), "err", logText(err.Error()))
		s.metrics.dsns.WithLabelValues("failed").Inc()
		return
	}
	log.Info("DSN sent for blocked recipients", "message_id", msg.id, "blocked", len(blocked))
	s.metrics.dsns.WithLabelValues("sent").Inc()
}
