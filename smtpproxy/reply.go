package smtpproxy

import (
	"errors"
	"strconv"

	"github.com/emersion/go-smtp"
)

// The replies the proxy gives of its own. Their texts are what the client
// sees; details go to the log only.
var (
	errAuthRequired       = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required: this relay is not open"}
	errAuthFailed         = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	errAuthMechanism      = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unsupported authentication mechanism: use PLAIN or LOGIN"}
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required: issue STARTTLS before AUTH"}
	errBadSender          = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Malformed sender address"}
	errSenderDomain       = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender domain not allowed for this user"}
	errBadRecipient       = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Malformed recipient address"}
	errTooLarge           = smtp.ErrDataTooLarge
	errTooManyRecipients  = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients: send the rest in another transaction"}
	errBadMessage         = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Malformed message header"}
	errLineTooLong        = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 6}, Message: "Message has a line longer than 2000 characters (RFC 5322 allows 998); nothing was relayed"}
	errClientGone         = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Message not received completely; nothing was relayed"}
	errUpstreamDown       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "Upstream mailer not reachable; nothing was relayed, try again later"}
	errNoSMTPUTF8         = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Upstream mailer does not support SMTPUTF8 addresses"}
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
