package main

import (
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/config"
	"optinproxy/notices"
	"optinproxy/optin"
	"optinproxy/unsubscribe"
	"optinproxy/upstream"
)

// newMailer builds the sender of the proxy's own mail (double opt-in
// confirmations, portal links), through the relay's upstream.
func newMailer(cfg *config.Config, up upstream.Sender) (*notices.Mailer, error) {
	return notices.New(notices.Options{
		Upstream: up,
		From:     cfg.NoticeFrom(),
		ReplyTo:  cfg.Notices.ReplyTo,
		Hostname: cfg.SMTP.Hostname,
		Language: cfg.Unsubscribe.Language,
	})
}

// doubleOptIn reports whether some purpose asks for double opt-in: only
// then is there a confirmation to mail.
func doubleOptIn(cfg *config.Config) bool {
	for _, p := range cfg.Purposes {
		if p.DoubleOptIn {
			return true
		}
	}
	return false
}

// newConfirmations is the outbox target that mails each pending double
// opt-in its /confirm/TOKEN link.
func newConfirmations(cfg *config.Config, ledger *optin.Ledger, up upstream.Sender, log *slog.Logger) (*notices.Confirmations, error) {
	tokens, err := unsubscribeTokens(cfg)
	if err != nil {
		return nil, err
	}
	mailer, err := newMailer(cfg, up)
	if err != nil {
		return nil, err
	}
	return notices.NewConfirmations(notices.ConfirmationsOptions{
		Mailer:   mailer,
		Store:    ledger.Store(),
		Purposes: ledger.Purposes(),
		Link: func(a optin.Address, purpose string, pending time.Time) string {
			return confirmURL(cfg, tokens.IssueKind(unsubscribe.KindConfirm, unsubscribe.Claim{Subject: a, Purpose: purpose, Issued: pending}))
		},
		Expiry: time.Duration(cfg.Policy.PendingExpiry),
		Logger: log,
	})
}

// newConfirmHandler builds the pages of /confirm/TOKEN.
func newConfirmHandler(cfg *config.Config, ledger *optin.Ledger, tokens *unsubscribe.Tokens, reg prometheus.Registerer, log *slog.Logger) (*unsubscribe.ConfirmHandler, error) {
	return unsubscribe.NewConfirmHandler(unsubscribe.ConfirmOptions{
		Tokens:   tokens,
		Ledger:   ledger,
		Language: cfg.Unsubscribe.Language,
		Expiry:   time.Duration(cfg.Policy.PendingExpiry),
		Logger:   log,
		Metrics:  reg,
	})
}

// confirmURL is the confirmation link of a token under http.public_url.
func confirmURL(cfg *config.Config, token string) string {
	return strings.TrimRight(cfg.HTTP.PublicURL, "/") + "/confirm/" + token
}
