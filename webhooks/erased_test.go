package webhooks

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

// TestErasedAddressRefused: on both stores, a Mailchimp subscribe and a
// CRM grant for an erased address are refused: answered 200 (a sender
// must not retry them for ever), counted as erased, logged without the
// address, and nothing is recorded.
func TestErasedAddressRefused(t *testing.T) {
	for name, open := range storeOpeners {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, open(t), nil)
			ctx := context.Background()
			for _, s := range []string{"api@mailchimp.com", "Erased.Person@Example.com"} {
				a, _ := optin.ParseAddress(s)
				if _, err := f.ledger.Erase(ctx, a, optin.ErasureRequest{Actor: "test"}); err != nil {
					t.Fatal(err)
				}
			}
			before := f.eventCount()
			if r := f.do(http.MethodPost, testMailchimpPath, formType, sample(t, "mailchimp/subscribe.txt"), nil); r.status != http.StatusOK {
				t.Errorf("Mailchimp subscribe of an erased address: %d %s; want 200", r.status, r.body)
			}
			body := `{"type":"consent.granted","email":"Erased.Person@Example.com","purpose":"newsletter"}`
			if r := f.crm(body, crmHeader(t, "", time.Now(), body)); r.status != http.StatusOK {
				t.Errorf("CRM grant of an erased address: %d %s; want 200", r.status, r.body)
			}
			if n := f.eventCount() - before; n != 0 {
				t.Errorf("the refused grants recorded %d events", n)
			}
			for _, source := range []string{"mailchimp", "crm"} {
				if got := f.metric("optinproxy_webhook_events_total", map[string]string{"source": source, "outcome": "erased"}); got != 1 {
					t.Errorf("%s: erased counted %v, want 1", source, got)
				}
			}
			for _, s := range []string{"api@mailchimp.com", "erased.person@example.com"} {
				if v := f.subject(s); !v.Erased || len(v.Consents) != 0 {
					t.Errorf("%s after the refused grant: %+v", s, v)
				}
			}
			logs := strings.ToLower(f.logs.String())
			if !strings.Contains(logs, "erased") || strings.Contains(logs, "erased.person") || strings.Contains(logs, "api@mailchimp") {
				t.Errorf("the log should say erased and name no address: %s", logs)
			}
		})
	}
}

// TestPayloadOfErasure: the subject.erased event of an erasure with a
// notice carries email with erased true; the same event without one, and
// every other event of an erased subject, carry none.
func TestPayloadOfErasure(t *testing.T) {
	a, _ := optin.ParseAddress("Told@Example.org")
	for _, tt := range []struct {
		name string
		e    optin.Event
		want string
	}{
		{"with a notice", optin.Event{ID: "e1", Type: optin.EventSubjectErased, Subject: a, Erased: true}, "told@example.org"},
		{"without", optin.Event{ID: "e2", Type: optin.EventSubjectErased, Erased: true}, ""},
		{"an earlier event", optin.Event{ID: "e3", Type: optin.EventConsentGranted, Subject: a, Erased: true}, ""},
	} {
		p := NewPayload(tt.e)
		if p.Email != tt.want || !p.Erased {
			t.Errorf("%s: email %q, erased %v; want %q, true", tt.name, p.Email, p.Erased, tt.want)
		}
	}
}
