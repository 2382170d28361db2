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
	testList = "a1b2c3d4e5"
	testKey  = "0123456789abcdef-us6"
)

var syncPurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true},
	"events":     {Name: "events", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, DoubleOptIn: true},
}

// newMailchimp starts the local API and a client for it.
func newMailchimp(t *testing.T) (*mailchimptest.Server, *webhooks.MailchimpClient) {
	t.Helper()
	srv := mailchimptest.New(t, mailchimptest.Options{APIKey: testKey})
	c, err := webhooks.NewMailchimpClient(webhooks.MailchimpOptions{APIKey: testKey, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// newLedger is a ledger on the embedded store, or on store when given.
func newLedger(t *testing.T, store optin.Store) *optin.Ledger {
	t.Helper()
	if store == nil {
		store = teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db"))
	}
	l, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: syncPurposes, PolicyVersion: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func addr(t testing.TB, s string) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newAudience(t *testing.T, c *webhooks.MailchimpClient) *webhooks.Audience {
	t.Helper()
	a, err := webhooks.NewAudience(webhooks.AudienceOptions{Client: c, ListID: testList, Purpose: "newsletter"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// stamp is a time as Mailchimp writes it.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05+00:00") }
