package config

import (
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// outboundEvents are the event types an outbound endpoint may ask for:
// every ledger event but the message receipts, which are the bulk of the
// log and stay in the store.
var outboundEvents = []string{
	"consent.granted", "consent.pending", "consent.withdrawn", "consent.expired",
	"consent.expiring", "subject.updated", "subject.erased",
	"suppression.added", "suppression.removed", "erasure.scheduled", "erasure.cancelled",
}

// urlSecretRE is what may stand in a URL path segment without escaping.
var urlSecretRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// minURLSecret is the shortest Mailchimp path secret accepted: the URL is
// the only thing that authenticates Mailchimp's deliveries.
const minURLSecret = 24

func (l *loader) checkWebhooks(c *Config) {
	w := &c.Webhooks
	if w.DedupWindow < Duration(time.Minute) {
		l.invalid("webhooks.dedup_window", "must be at least 1m: senders retry for hours (Mailchimp, Mandrill) or days")
	}
	l.checkMailchimp(w, c.Purposes)
	l.checkMandrill(w)
	l.checkCRM(&w.CRM)
	for i, o := range w.Outbound {
		key := index("webhooks.outbound", i)
		if err := checkHTTPURL(o.URL); err != nil {
			l.invalid(key+".url", err.Error())
		}
		if o.Secret == "" {
			l.invalid(key+".secret", `must be set (a Standard Webhooks secret, "whsec_" and base64; or secret_file)`)
		} else if err := checkStandardSecret(o.Secret); err != nil {
			l.invalid(key+".secret", err.Error())
		}
		for j, e := range o.Events {
			if !oneOf(e, outboundEvents) {
				l.invalid(index(key+".events", j), mustBeOneOf(e, outboundEvents))
			}
		}
	}
	if w.Outbox.DeadAfter < Duration(time.Minute) {
		l.invalid("webhooks.outbox.dead_after", "must be at least 1m")
	}
	if w.Outbox.RetiredFor < Duration(time.Hour) {
		l.invalid("webhooks.outbox.retired_for", "must be at least 1h")
	}
	if api := &w.MailchimpAPI; api.APIKeyFile != "" {
		l.checkPurposeName("webhooks.mailchimp_api.purpose", api.Purpose, c.Purposes)
		if api.ListID == "" {
			l.invalid("webhooks.mailchimp_api.list_id", "must be set when api_key_file is")
		}
		if api.BaseURL == "" && api.APIKey != "" && !strings.Contains(api.APIKey, "-") {
			l.invalid("webhooks.mailchimp_api.api_key_file", "the key has no data centre suffix (such as -us6); set webhooks.mailchimp_api.base_url")
		}
	}
	if u := w.MailchimpAPI.BaseURL; u != "" {
		if err := checkHTTPURL(u); err != nil {
			l.invalid("webhooks.mailchimp_api.base_url", err.Error())
		}
	}
	if u := w.MandrillAPI.BaseURL; u != "" {
		if err := checkHTTPURL(u); err != nil {
			l.invalid("webhooks.mandrill_api.base_url", err.Error())
		}
	}
}

func (l *loader) checkMailchimp(w *Webhooks, purposes map[string]Purpose) {
	m := &w.Mailchimp
	for _, id := range slices.Sorted(maps.Keys(m.Lists)) {
		l.checkPurposeName("webhooks.mailchimp.lists."+id, m.Lists[id], purposes)
	}
	switch {
	case m.Secret == "" && len(m.Lists) > 0:
		l.invalid("webhooks.mailchimp.secret", "must be set when lists are: it is the path segment of the URL registered at Mailchimp")
	case m.Secret != "" && (len(m.Secret) < minURLSecret || !urlSecretRE.MatchString(m.Secret)):
		l.invalid("webhooks.mailchimp.secret", fmt.Sprintf("want at least %d letters, digits, '-' or '_' (for example: openssl rand -hex 16)", minURLSecret))
	case m.Secret != "" && len(m.Lists) == 0:
		l.invalid("webhooks.mailchimp.lists", "must map at least one list id to a purpose")
	}
}

func (l *loader) checkMandrill(w *Webhooks) {
	m := &w.Mandrill
	if m.URL != "" {
		if err := checkHTTPURL(m.URL); err != nil {
			l.invalid("webhooks.mandrill.url", err.Error())
		}
	}
	switch {
	case m.Key != "" && m.URL == "":
		l.invalid("webhooks.mandrill.url", "must be set when key is: the URL exactly as registered at Mandrill, which the signature covers")
	case m.Key == "" && m.URL != "":
		l.invalid("webhooks.mandrill.key", "must be set when url is: the webhook's key, shown at Mandrill")
	}
}

func (l *loader) checkCRM(c *CRM) {
	if c.Secret != "" {
		if err := checkStandardSecret(c.Secret); err != nil {
			l.invalid("webhooks.crm.secret", err.Error())
		}
	}
	if c.Tolerance < Duration(time.Second) || c.Tolerance > Duration(time.Hour) {
		l.invalid("webhooks.crm.tolerance", "must be between 1s and 1h (5m is usual)")
	}
}

// checkStandardSecret accepts a Standard Webhooks secret: "whsec_" and
// base64 of 24 to 64 random bytes.
func checkStandardSecret(s string) error {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return fmt.Errorf(`want "whsec_" followed by base64 (for example: echo whsec_$(openssl rand -base64 32))`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf(`the part after "whsec_" is not base64`)
	}
	if len(key) < 24 || len(key) > 64 {
		return fmt.Errorf("the key is %d bytes; want 24 to 64", len(key))
	}
	return nil
}
