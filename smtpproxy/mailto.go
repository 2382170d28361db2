package smtpproxy

import (
	"context"
	"strings"
	"time"
)

// Unsubscriber applies the unsubscribe tokens of mail sent to the mailto
// address of List-Unsubscribe: unsubscribe+TOKEN@<mailto domain>.
type Unsubscriber interface {
	// Check reports whether token is one the proxy issued.
	Check(token string) error
	// Apply withdraws what token names; channel says how it came.
	Apply(ctx context.Context, token, channel string) error
}

// mailtoPrefix starts the local part of an unsubscribe address.
const mailtoPrefix = "unsubscribe+"

// unsubscribeToken returns the token of an unsubscribe address at the
// mailto domain. The token is taken from the address as written: it is
// case-sensitive, and address normalization would lower it.
func (s *Server) unsubscribeToken(raw string) (string, bool) {
	if s.opts.MailtoDomain == "" || s.opts.Unsubscriber == nil {
		return "", false
	}
	at := strings.LastIndexByte(raw, '@')
	if at < 0 || !strings.EqualFold(raw[at+1:], s.opts.MailtoDomain) {
		return "", false
	}
	local := raw[:at]
	if len(local) <= len(mailtoPrefix) || !strings.EqualFold(local[:len(mailtoPrefix)], mailtoPrefix) {
		return "", false
	}
	return local[len(mailtoPrefix):], true
}

// maxUnsubscribeMessage bounds what a client that may not relay can send
// to an unsubscribe address: its content is not read.
const maxUnsubscribeMessage = 1 << 20

// mailtoTimeout bounds applying a message's unsubscribe tokens.
const mailtoTimeout = 30 * time.Second

// applyUnsubscribes withdraws what the unsubscribe addresses of tx name,
// before anything of the message is relayed: a store that cannot take
// them fails the whole message, which the sender retries.
func (s *Server) applyUnsubscribes(tx *transaction) error {
	if len(tx.unsubscribes) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.relays, mailtoTimeout)
	defer cancel()
	for _, token := range tx.unsubscribes {
		if err := s.opts.Unsubscriber.Apply(ctx, token, "mailto"); err != nil {
			s.log.Error("unsubscribe by mail not applied", "err", logText(err.Error()))
			return errStoreDown
		}
	}
	s.log.Info("unsubscribed by mail", "tokens", len(tx.unsubscribes))
	return nil
}
