package smtpproxy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"optinproxy/internal/plural"
	"optinproxy/optin"
)

// Every reply the proxy gives a client is built in this file. Their texts
// are what the client sees; details go to the log only.

var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required: this relay is not open"}
	// errUserGone refuses a session whose user a reload removed; it may
	// not AUTH again on this connection.
	errUserGone = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required: this account is no longer configured; reconnect and log in again"}
	// errPasswordChanged ends a session whose user's password a reload
	// changed: 4xx, so that the client reconnects and logs in again
	// rather than bouncing the message (a hash made again of the same
	// password changes too).
	errPasswordChanged    = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "This account's password changed: reconnect and log in again"}
	errAuthFailed         = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	errAuthLocked         = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed logins from your address; try again later"}
	errAuthMechanism      = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unsupported authentication mechanism: use PLAIN or LOGIN"}
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required: issue STARTTLS before AUTH"}
	errBadSender          = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Malformed sender address"}
	errSenderDomain       = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender domain not allowed for this user"}
	errBadRecipient       = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Malformed recipient address"}
	errTooLarge           = smtp.ErrDataTooLarge
	errTooManyRecipients  = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients: send the rest in another transaction"}
	errBusy               = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Too much mail in flight right now; nothing was relayed, try again later"}
	errBadMessage         = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Malformed message header"}
	errLineTooLong        = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 6}, Message: "Message has a line longer than 2000 characters (RFC 5322 allows 998); nothing was relayed"}
	errClientGone         = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Message not received completely; nothing was relayed"}
	errStoreDown          = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Consent store not reachable; nothing was relayed, try again later"}
	errUpstreamDown       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "Upstream mailer not reachable; nothing was relayed, try again later"}
	errUpstreamBusy       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 5}, Message: "Every connection to the upstream mailer stayed busy; nothing was relayed, try again later"}
	errNoSMTPUTF8         = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Upstream mailer does not support SMTPUTF8 addresses; nothing was relayed"}
	errUpstreamNoTLS      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 5}, Message: "Upstream mailer does not offer STARTTLS, which this relay is configured to require; nothing was relayed, try again later"}
	errNoRequireTLS       = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 30}, Message: "REQUIRETLS was asked for, and the upstream mailer does not support it; nothing was relayed"}
	// errTooManyConnections opens a connection over MaxConnections or
	// MaxConnectionsPerIP: 421 tells the client to come back later, 4.7.0
	// that it was refused by policy.
	errTooManyConnections = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections, try again later"}
	errBadUnsubscribe     = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such unsubscribe address: the link may be mistyped or too old"}
	errShuttingDown       = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	errInternal           = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Internal error; nothing was relayed, try again later"}
)

// replyOK is what a nil outcome counts as.
const replyOK = 250

// reply is the one place where an outcome becomes what go-smtp writes to
// the client: a *smtp.SMTPError passes as it is, any other error becomes
// a temporary failure whose text stays in the log (go-smtp would show an
// error's text to the client). Every reply is counted by code.
func (s *Server) reply(err error) error {
	if err == nil {
		s.metrics.replies.WithLabelValues(strconv.Itoa(replyOK)).Inc()
		return nil
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		s.log.Error("internal error", "err", err)
		se = errInternal
	}
	s.metrics.replies.WithLabelValues(strconv.Itoa(se.Code)).Inc()
	return se
}

// purposeError is the 550 for a purpose the message may not have.
func purposeError(format string, args ...any) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: fmt.Sprintf(format, args...)}
}

func errConflictingPurposes(a, b string) *smtp.SMTPError {
	return purposeError("Conflicting %s headers: %s and %s", purposeHeader, quoteName(a), quoteName(b))
}

var errNoPurpose = purposeError("No purpose: add an %s header naming one", purposeHeader)

// errUnknownPurpose names the purpose and the ones the user may use, in
// the words the API and the command line use too.
func errUnknownPurpose(name string, usable optin.Purposes) *smtp.SMTPError {
	return purposeError("Unknown purpose %s", usable.Unknown(replyName(name)))
}

func errPurposeNotAllowed(name string) *smtp.SMTPError {
	return purposeError("Purpose %s is not allowed for this user", quoteName(name))
}

// refusalReply is the 550 to RCPT for a recipient whose fate is known.
func refusalReply(f refusal) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: fmt.Sprintf("Recipient may not receive %s mail: %s", f.purpose, f.decision.Reason)}
}

// Message results, as counted in optinproxy_smtp_messages_total.
const (
	resultRelayed  = "relayed"
	resultPartial  = "partial"
	resultBlocked  = "blocked"
	resultTempfail = "tempfail"
	resultRejected = "rejected"
)

// answer is the reply to DATA for a decided message, and the result it is
// counted as: 550 when every recipient is blocked; 250 when every copy due
// was accepted (or relayed by an earlier try); 451 naming the refused
// copies when only some went out; and when none went out, the upstream's
// own 5xx, or 451.
func answer(tx *transaction, f fates, out outcome, stored bool) (string, *smtp.SMTPError) {
	switch {
	case len(f.due) == 0 && !stored:
		return resultTempfail, errStoreDown
	case len(f.due) == 0 && f.earlier == 0:
		return resultBlocked, blockedReply(tx.purpose, f.blocked)
	case len(f.due) == 0:
		return resultRelayed, ok(fmt.Sprintf("Ok: %s already relayed to %s; blocked %d%s", tx.qid, allAllowed(f.earlier), len(f.blocked), whomBlocked(f.blocked)))
	case out.err != nil && out.err.Code >= 500:
		return resultRejected, out.err
	case out.err != nil:
		return resultTempfail, out.err
	case len(out.accepted) == 0:
		return refusedAll(out.failed)
	case len(out.failed) > 0:
		return resultPartial, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
			Message: fmt.Sprintf("Relayed to %d of %d recipients; the upstream refused the others (%s); retry: the relayed ones will not get it twice",
				len(out.accepted), len(f.due), summarize(out.failed))}
	}
	text := fmt.Sprintf("Ok: queued as %s; relayed %d, blocked %d%s", tx.qid, len(f.due), len(f.blocked), whomBlocked(f.blocked))
	if f.earlier > 0 {
		text += fmt.Sprintf(" (%d relayed earlier)", f.earlier)
	}
	if n := len(out.uncertain); n > 0 {
		copies := fmt.Sprintf("%d of the copies were sent, before it confirmed them: they may have been delivered", n)
		if n == 1 {
			copies = "a copy was sent, before it confirmed it: it may have been delivered"
		}
		text += "; the upstream's connection broke after " + copies + ", and will not be sent again"
	}
	if f.monitor > 0 {
		text += fmt.Sprintf("; monitor mode: %d would have been blocked", f.monitor)
	}
	return resultRelayed, ok(text)
}

// whomBlocked names the blocked recipients of a partly relayed message
// with their reasons, so the client knows whom it did not reach (the
// blocked recipients are reported in the reply text). The client gave
// these addresses, so naming them back is no leak.
func whomBlocked(blocked []verdict) string {
	if len(blocked) == 0 {
		return ""
	}
	return " (" + listRecipients(len(blocked), func(i int) string {
		return fmt.Sprintf("<%s>: %s", blocked[i].rcpt.raw, blocked[i].decision.Reason)
	}) + ")"
}

// unsubscribed answers a message that went only to unsubscribe
// addresses.
func unsubscribed(n int) *smtp.SMTPError {
	if n == 1 {
		return ok("Unsubscribed: you will get no more of this mail")
	}
	return ok(fmt.Sprintf("Unsubscribed: %d subscriptions ended", n))
}

// allAllowed counts the allowed recipients a message reached before.
func allAllowed(n int) string {
	if n == 1 {
		return "its 1 allowed recipient"
	}
	return "all " + plural.Count(n, "allowed recipient")
}

func ok(text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: text}
}

// blockedReply is the 550 when every recipient is blocked, with each
// recipient's reason. The client gave these addresses, so naming them
// back is no leak.
func blockedReply(p optin.Purpose, blocked []verdict) *smtp.SMTPError {
	list := listRecipients(len(blocked), func(i int) string {
		return fmt.Sprintf("<%s>: %s", blocked[i].rcpt.raw, blocked[i].decision.Reason)
	})
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: fmt.Sprintf("No recipient may receive this %s message: %s", p.Name, list)}
}

// refusedAll is the reply when the upstream refused every recipient at
// RCPT: a 5xx only when every refusal was permanent.
func refusedAll(failed []failure) (string, *smtp.SMTPError) {
	for _, f := range failed {
		if f.err.Code < 500 {
			return resultTempfail, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
				Message: "Upstream mailer refused the recipients (" + summarize(failed) + "); nothing was relayed, try again later"}
		}
	}
	first := failed[0].err
	return resultRejected, &smtp.SMTPError{Code: first.Code, EnhancedCode: first.EnhancedCode,
		Message: "Upstream mailer refused every recipient: " + summarize(failed)}
}

// upstreamRefused passes an upstream's permanent refusal on to the
// client, marked as the upstream's.
func upstreamRefused(se *smtp.SMTPError) *smtp.SMTPError {
	return &smtp.SMTPError{Code: se.Code, EnhancedCode: se.EnhancedCode, Message: "Upstream: " + oneLine(se.Message)}
}

// upstreamDeferred is the 451 for an upstream's temporary refusal.
func upstreamDeferred(se *smtp.SMTPError) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
		Message: "Upstream mailer deferred the message (" + oneLine(se.Error()) + "); nothing was relayed, try again later"}
}

// upstreamLacks is the reply when the upstream lacks an extension the
// message or the configuration needs, naming it.
func upstreamLacks(ext string) *smtp.SMTPError {
	switch ext {
	case "SMTPUTF8":
		return errNoSMTPUTF8
	case "STARTTLS":
		return errUpstreamNoTLS
	case "REQUIRETLS":
		return errNoRequireTLS
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Upstream mailer lacks " + quoteName(ext) + "; nothing was relayed, try again later"}
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
