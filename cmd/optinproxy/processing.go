package main

import (
	"net"
	"net/url"
	"strings"
	"time"

	"optinproxy/admin"
	"optinproxy/config"
	"optinproxy/webhooks"
)

// processingRecord is what the record of processing (GET
// /api/v1/reports/processing) takes from the configuration: the
// controller, the retention periods, where the ledger is kept and who
// receives personal data. Hosts only: never a user name, password or key.
func processingRecord(cfg *config.Config) admin.Processing {
	c := cfg.Controller
	rec := admin.Processing{
		Controller:       admin.Controller{Name: c.Name, Address: c.Address, Contact: c.Contact, DPO: c.DPO},
		Store:            "embedded",
		ReceiptRetention: time.Duration(cfg.Policy.ReceiptRetention),
		DeliveryDedup:    time.Duration(cfg.Upstream.DedupWindow),
		WebhookDedup:     time.Duration(cfg.Webhooks.DedupWindow),
		OutboxRetention:  time.Duration(cfg.Webhooks.Outbox.RetiredFor),
		PendingExpiry:    time.Duration(cfg.Policy.PendingExpiry),
	}
	if cfg.Store.UsesRedis() {
		rec.Store = "redis"
	}
	if u, err := url.Parse(cfg.Upstream.URL); err == nil && u.Scheme != "file" && u.Host != "" {
		rec.Processors = append(rec.Processors, admin.Processor{Name: "upstream mailer",
			Receives: "every relayed message: the recipients' addresses and the content", Host: u.Host})
	}
	for _, o := range cfg.Webhooks.Outbound {
		rec.Processors = append(rec.Processors, admin.Processor{Name: "outbound webhook",
			Receives: "the events " + strings.Join(o.Events, ", ") + " with the subject's address", Host: urlHost(o.URL)})
	}
	if api := cfg.Webhooks.MailchimpAPI; api.APIKey != "" || api.APIKeyFile != "" {
		host := urlHost(api.BaseURL)
		if api.BaseURL == "" {
			host = "api.mailchimp.com"
			if i := strings.LastIndexByte(api.APIKey, '-'); i >= 0 && !strings.ContainsAny(api.APIKey[i+1:], "./:@") {
				host = api.APIKey[i+1:] + ".api.mailchimp.com" // the data centre, not the key
			}
		}
		rec.Processors = append(rec.Processors, admin.Processor{Name: "Mailchimp API",
			Receives: "the audience's members' addresses and subscription states (list sync)", Host: host})
	}
	if api := cfg.Webhooks.MandrillAPI; api.APIKey != "" || api.APIKeyFile != "" {
		host := urlHost(api.BaseURL)
		if api.BaseURL == "" {
			host = urlHost(webhooks.DefaultMandrillURL)
		}
		rec.Processors = append(rec.Processors, admin.Processor{Name: "Mandrill API",
			Receives: "suppressed addresses, for its rejection list", Host: host})
	}
	return rec
}

// urlHost is the host (and port) of a URL, without user information.
func urlHost(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(u.Host); err == nil {
		return u.Host
	}
	return u.Hostname()
}
