package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/config"
	"optinproxy/optin"
	"optinproxy/webhooks"
)

// newReceiver builds the inbound webhooks of /webhooks/ from the
// configuration. A sender that is not configured answers 404. rates is
// shared with the relay, which counts the copies the complaints are
// measured against.
func newReceiver(cfg *config.Config, ledger *optin.Ledger, rates *optin.DomainRates, reg prometheus.Registerer, log *slog.Logger) (*webhooks.Receiver, error) {
	w := &cfg.Webhooks
	return webhooks.NewReceiver(webhooks.ReceiverOptions{
		Ledger:      ledger,
		Mailchimp:   webhooks.MailchimpOptions{Secret: w.Mailchimp.Secret, Lists: w.Mailchimp.Lists},
		Mandrill:    webhooks.MandrillOptions{Key: w.Mandrill.Key, URL: w.Mandrill.URL},
		CRM:         webhooks.CRMOptions{Secret: w.CRM.Secret, Tolerance: time.Duration(w.CRM.Tolerance)},
		DedupWindow: time.Duration(w.DedupWindow),
		Rates:       rates,
		Metrics:     reg,
		Logger:      log,
	})
}
