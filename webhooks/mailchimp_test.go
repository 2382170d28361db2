package webhooks

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

func TestMailchimpValidation(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		if r := f.do(method, testMailchimpPath, "", nil, nil); r.status != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", method, r.status, r.body)
		}
		if r := f.do(method, "/webhooks/mailchimp/wrong", "", nil, nil); r.status != http.StatusUnauthorized {
			t.Errorf("%s with a wrong secret: %d, want 401", method, r.status)
		}
	}
	if r := f.do(http.MethodPut, testMailchimpPath, "", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", r.status)
	}
}

func TestMailchimpWrongSecret(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	for _, path := range []string{"/webhooks/mailchimp/wrong", testMailchimpPath + "x", "/webhooks/mailchimp/" + strings.Repeat("s", 200)} {
		if r := f.do(http.MethodPost, path, formType, sample(t, "mailchimp/subscribe.txt"), nil); r.status != http.StatusUnauthorized {
			t.Errorf("POST %s: %d %s, want 401", path, r.status, r.body)
		}
	}
	if n := f.eventCount(); n != 0 {
		t.Errorf("%d events recorded after a wrong secret, want none", n)
	}
	if got := f.metric("optinproxy_webhook_events_total", map[string]string{"source": "mailchimp", "outcome": "rejected"}); got != 3 {
		t.Errorf("rejected counted %v, want 3", got)
	}
}

func TestMailchimpNotConfigured(t *testing.T) {
	f := newFixture(t, fileStore(t), func(o *ReceiverOptions) { o.Mailchimp = MailchimpOptions{} })
	if r := f.do(http.MethodGet, testMailchimpPath, "", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("GET without a secret configured: %d, want 404", r.status)
	}
}

// TestMailchimpTypes posts each documented event type, as Mailchimp
// sends it, and checks what the store holds afterwards.
func TestMailchimpTypes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		sample string
		setup  func(t *testing.T, f *fixture)
		// events is how many events the delivery records.
		events int
		check  func(t *testing.T, f *fixture)
	}{
		{sample: "subscribe", events: 1, check: func(t *testing.T, f *fixture) {
			c := f.consent("api@mailchimp.com", "newsletter")
			if c == nil || c.Status != optin.StatusGranted || c.Source != optin.SourceMailchimp ||
				!c.GrantedAt.Equal(time.Date(2009, 3, 26, 21, 35, 57, 0, time.UTC)) {
				t.Fatalf("consent = %+v", c)
			}
			ev := c.Evidence
			if ev == nil || ev.IP != "10.20.10.30" || ev.Extra["ip_signup"] != "10.20.10.30" ||
				ev.Extra["mailchimp_id"] != "8a25ff1d98" || ev.Extra["list_id"] != testList {
				t.Errorf("evidence = %+v", ev)
			}
			events := f.subject("api@mailchimp.com").Events
			if len(events) != 1 || events[0].Actor != ActorMailchimp {
				t.Errorf("events = %+v", events)
			}
		}},
		{sample: "unsubscribe", setup: grantMailchimp, events: 1, check: func(t *testing.T, f *fixture) {
			if c := f.consent("api@mailchimp.com", "newsletter"); c == nil || c.Status != optin.StatusWithdrawn {
				t.Errorf("consent = %+v, want withdrawn", c)
			}
			if s := f.suppressions("api@mailchimp.com"); len(s) != 0 {
				t.Errorf("suppressions %v, want none", s)
			}
		}},
		{sample: "unsubscribe_abuse", setup: grantMailchimp, events: 2, check: func(t *testing.T, f *fixture) {
			if c := f.consent("api@mailchimp.com", "newsletter"); c == nil || c.Status != optin.StatusWithdrawn {
				t.Errorf("consent = %+v, want withdrawn", c)
			}
			if s := f.suppressions("api@mailchimp.com"); !slices.Equal(s, []optin.SuppressionReason{optin.SuppressComplaint}) {
				t.Errorf("suppressions %v, want complaint", s)
			}
		}},
		{sample: "profile", setup: grantMailchimp, events: 0},
		{sample: "campaign", events: 0},
		{sample: "cleaned", events: 1, check: func(t *testing.T, f *fixture) {
			if s := f.suppressions("api+cleaned@mailchimp.com"); !slices.Equal(s, []optin.SuppressionReason{optin.SuppressHardBounce}) {
				t.Errorf("suppressions %v, want hard_bounce", s)
			}
		}},
		{sample: "cleaned_abuse", events: 1, check: func(t *testing.T, f *fixture) {
			if s := f.suppressions("api+abuse@mailchimp.com"); !slices.Equal(s, []optin.SuppressionReason{optin.SuppressComplaint}) {
				t.Errorf("suppressions %v, want complaint", s)
			}
		}},
		{sample: "upemail", events: 4, setup: func(t *testing.T, f *fixture) {
			old, _ := optin.ParseAddress("api+old@mailchimp.com")
			if _, err := f.ledger.Grant(ctx, old, "newsletter", optin.ConsentChange{Source: "form", At: time.Date(2009, 3, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
				t.Fatal(err)
			}
		}, check: func(t *testing.T, f *fixture) {
			// The copy on the new address, subject.updated on each, the
			// withdrawal on the old.
			if c := f.consent("api+new@mailchimp.com", "newsletter"); c == nil || c.Status != optin.StatusGranted ||
				c.Source != "form" || c.Evidence == nil || c.Evidence.Extra["moved_from"] == "" {
				t.Errorf("new address = %+v", c)
			}
			if c := f.consent("api+old@mailchimp.com", "newsletter"); c == nil || c.Status != optin.StatusWithdrawn {
				t.Errorf("old address = %+v, want withdrawn", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.sample, func(t *testing.T) {
			f := newFixture(t, fileStore(t), nil)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			before := f.eventCount()
			r := f.do(http.MethodPost, testMailchimpPath, formType, sample(t, "mailchimp/"+tt.sample+".txt"), nil)
			if r.status != http.StatusOK {
				t.Fatalf("POST: %d %s", r.status, r.body)
			}
			if got := f.eventCount() - before; got != tt.events {
				t.Errorf("%d events recorded, want %d", got, tt.events)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

// grantMailchimp posts the subscribe sample.
func grantMailchimp(t *testing.T, f *fixture) {
	t.Helper()
	if r := f.do(http.MethodPost, testMailchimpPath, formType, sample(t, "mailchimp/subscribe.txt"), nil); r.status != http.StatusOK {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
}

// TestMailchimpNewestWins delivers a subscribe fired before the stored
// unsubscribe: it changes nothing.
func TestMailchimpNewestWins(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	if r := f.do(http.MethodPost, testMailchimpPath, formType, sample(t, "mailchimp/unsubscribe.txt"), nil); r.status != http.StatusOK {
		t.Fatalf("unsubscribe: %d %s", r.status, r.body)
	}
	before := f.eventCount()
	grantMailchimp(t, f) // fired 5 minutes before the unsubscribe
	if c := f.consent("api@mailchimp.com", "newsletter"); c == nil || c.Status != optin.StatusWithdrawn {
		t.Errorf("consent = %+v, want the later withdrawal", c)
	}
	if n := f.eventCount() - before; n != 0 {
		t.Errorf("the older subscribe recorded %d events", n)
	}
	if got := f.metric("optinproxy_webhook_events_total", map[string]string{"source": "mailchimp", "outcome": "unchanged"}); got != 1 {
		t.Errorf("unchanged counted %v, want 1", got)
	}
}

func TestMailchimpUnknownList(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	form, _ := url.ParseQuery(string(sample(t, "mailchimp/subscribe.txt")))
	form.Set("data[list_id]", "ffffffffff")
	if r := f.do(http.MethodPost, testMailchimpPath, formType, []byte(form.Encode()), nil); r.status != http.StatusOK {
		t.Fatalf("POST: %d %s, want 200", r.status, r.body)
	}
	if n := f.eventCount(); n != 0 {
		t.Errorf("%d events for an unmapped list", n)
	}
	if !strings.Contains(f.logs.String(), "ffffffffff") {
		t.Errorf("the log does not name the list: %s", f.logs)
	}
}

func TestMailchimpMalformed(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	tests := []struct {
		change func(url.Values)
		field  string
	}{
		{func(v url.Values) { v.Del("type") }, `field "type": required`},
		{func(v url.Values) { v.Set("fired_at", "2009-03-26T21:35:57Z") }, `field "fired_at"`},
		{func(v url.Values) { v.Del("fired_at") }, `field "fired_at": required`},
		{func(v url.Values) { v.Del("data[list_id]") }, `field "data[list_id]": required`},
		{func(v url.Values) { v.Set("data[email]", "not an address") }, `field "data[email]"`},
		{func(v url.Values) { v.Del("data[email]") }, `field "data[email]": required`},
	}
	for _, tt := range tests {
		form, _ := url.ParseQuery(string(sample(t, "mailchimp/subscribe.txt")))
		tt.change(form)
		r := f.do(http.MethodPost, testMailchimpPath, formType, []byte(form.Encode()), nil)
		if r.status != http.StatusBadRequest || !strings.Contains(errorMessage(t, r.body), tt.field) {
			t.Errorf("%s: %d %s", tt.field, r.status, r.body)
		}
	}
	if r := f.do(http.MethodPost, testMailchimpPath, "application/json", []byte(`{}`), nil); r.status != http.StatusBadRequest ||
		!strings.Contains(r.body, "Content-Type") {
		t.Errorf("JSON body: %d %s", r.status, r.body)
	}
	if n := f.eventCount(); n != 0 {
		t.Errorf("%d events recorded from malformed deliveries", n)
	}
}

func TestBodyCap(t *testing.T) {
	f := newFixture(t, fileStore(t), func(o *ReceiverOptions) { o.MaxBodyBytes = 64; o.MandrillMaxBodyBytes = 128 })
	big := []byte("type=subscribe&pad=" + strings.Repeat("x", 200))
	for _, path := range []string{testMailchimpPath, "/webhooks/mandrill", "/webhooks/crm"} {
		if r := f.do(http.MethodPost, path, formType, big, nil); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: %d %s, want 413", path, r.status, r.body)
		}
	}
}

// TestStoreUnavailable: when the dedup marks cannot be read, the sender
// is asked to retry and nothing is applied.
func TestStoreUnavailable(t *testing.T) {
	f := newFixture(t, fileStore(t), func(o *ReceiverOptions) { o.Marks = failingMarks{} })
	r := f.do(http.MethodPost, testMailchimpPath, formType, sample(t, "mailchimp/subscribe.txt"), nil)
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("POST: %d %s, want 503", r.status, r.body)
	}
	if n := f.eventCount(); n != 0 {
		t.Errorf("%d events recorded", n)
	}
}

// TestMailchimpDuplicate delivers each sample twice, as Mailchimp's retry
// would, on the file store and on Redis: the second delivery records
// nothing.
func TestMailchimpDuplicate(t *testing.T) {
	for name, open := range storeOpeners {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, open(t), nil)
			for _, s := range []string{"subscribe", "unsubscribe_abuse", "cleaned", "upemail"} {
				body := sample(t, "mailchimp/"+s+".txt")
				if r := f.do(http.MethodPost, testMailchimpPath, formType, body, nil); r.status != http.StatusOK {
					t.Fatalf("%s: %d %s", s, r.status, r.body)
				}
				before := f.eventCount()
				if r := f.do(http.MethodPost, testMailchimpPath, formType, body, nil); r.status != http.StatusOK {
					t.Fatalf("%s again: %d %s", s, r.status, r.body)
				}
				if n := f.eventCount() - before; n != 0 {
					t.Errorf("%s again: %d events recorded", s, n)
				}
			}
			if got := f.metric("optinproxy_webhook_events_total", map[string]string{"source": "mailchimp", "outcome": "duplicate"}); got != 4 {
				t.Errorf("duplicates counted %v, want 4", got)
			}
		})
	}
}

// TestMailchimpValuesTrimmed: a body posted from a file ends in a
// newline; the last field's value is evidence and keeps none of it.
func TestMailchimpValuesTrimmed(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	body := append(sample(t, "mailchimp/subscribe.txt"), "\r\n"...)
	if r := f.do(http.MethodPost, testMailchimpPath, formType, body, nil); r.status != http.StatusOK {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	c := f.consent("api@mailchimp.com", "newsletter")
	if c == nil || c.Evidence == nil || c.Evidence.Extra["ip_signup"] != "10.20.10.30" {
		t.Errorf("consent = %+v, want ip_signup 10.20.10.30 without the line end", c)
	}
}

// TestUnknownWebhookPath: a path that names no receiver (or Mailchimp's
// without its secret) gets a JSON 404 that lists the receivers.
func TestUnknownWebhookPath(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	for _, path := range []string{"/webhooks/", "/webhooks/mailchimp/", "/webhooks/sendgrid"} {
		r := f.do(http.MethodPost, path, formType, []byte("type=subscribe"), nil)
		if r.status != http.StatusNotFound || errorCode(t, r.body) != "not_found" || !strings.Contains(r.body, "/webhooks/crm") {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}
