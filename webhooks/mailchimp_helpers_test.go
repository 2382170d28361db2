package webhooks_test

import (
	"path/filepath"
	"testing"
	"time"

	"optinproxy/internal/mailchimptest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/webhooks"
)

const (
	mcList = "a1b2c3d4e5"
	mcKey  = "0123456789abcdef-us6"
)

var mcPurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true},
	"events":     {Name: "events", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, DoubleOptIn: true},
}

// mcServer starts the local API and a client for it.
func mcServer(t *testing.T) (*mailchimptest.Server, *webhooks.MailchimpClient) {
	t.Helper()
	srv := mailchimptest.New(t, mailchimptest.Options{APIKey: mcKey})
	c, err := webhooks.NewMailchimpClient(webhooks.MailchimpClientOptions{APIKey: mcKey, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// mcLedger is a ledger on the embedded store, or on store when given.
func mcLedger(t *testing.T, store optin.Store) *optin.Ledger {
	t.Helper()
	if store == nil {
		store = teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db"))
	}
	l, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: mcPurposes, PolicyVersion: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mcAddr(t testing.TB, s string) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mcAudience(t *testing.T, c *webhooks.MailchimpClient) *webhooks.Audience {
	t.Helper()
	a, err := webhooks.NewAudience(webhooks.AudienceOptions{Client: c, ListID: mcList, Purpose: "newsletter"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// mcStamp is a time as Mailchimp writes it.
func mcStamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05+00:00") }
