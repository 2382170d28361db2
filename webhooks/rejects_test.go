package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"optinproxy/internal/mailchimptest"
	"optinproxy/optin"
	"optinproxy/webhooks"
)

func mcRejects(t *testing.T, srv *mailchimptest.Server, key string, purposes ...string) *webhooks.MandrillRejects {
	t.Helper()
	m, err := webhooks.NewMandrillRejects(webhooks.RejectsOptions{APIKey: key, BaseURL: srv.MandrillURL, Purposes: purposes})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mcSuppression(t testing.TB, email string, reason optin.SuppressionReason) webhooks.Delivery {
	return webhooks.Delivery{ID: "ev1", Attempt: 1, Event: optin.Event{
		ID: "ev1", Type: optin.EventSuppressionAdded, Subject: mcAddr(t, email), Actor: "api-token",
		Details: []byte(`{"reason":"` + string(reason) + `"}`),
	}}
}

func TestRejectsAddBody(t *testing.T) {
	srv := mailchimptest.New(t, mailchimptest.Options{MandrillKey: "md-key"})
	m := mcRejects(t, srv, "md-key")
	if m.Name() != "mandrill-rejects" {
		t.Errorf("Name() = %q", m.Name())
	}
	retry, err := m.Deliver(context.Background(), mcSuppression(t, "Jan@Example.COM", optin.SuppressComplaint))
	if err != nil || retry {
		t.Fatalf("Deliver = %v, %v", retry, err)
	}
	calls := srv.Calls()
	if len(calls) != 1 || calls[0].Method != "POST" || calls[0].Path != "/api/1.0/rejects/add.json" {
		t.Fatalf("calls = %+v", calls)
	}
	var body map[string]any
	if err := json.Unmarshal(calls[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"key": "md-key", "email": "jan@example.com", "comment": "optinproxy: suppressed (complaint)"}
	if len(body) != len(want) {
		t.Errorf("body = %v; want exactly %v", body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body[%q] = %v, want %v", k, body[k], v)
		}
	}
}

func TestRejectsRefusals(t *testing.T) {
	srv := mailchimptest.New(t, mailchimptest.Options{MandrillKey: "md-key"})
	ctx := context.Background()
	retry, err := mcRejects(t, srv, "wrong").Deliver(ctx, mcSuppression(t, "jan@example.com", optin.SuppressHardBounce))
	var ae *webhooks.APIError
	if retry || !errors.As(err, &ae) || ae.Title != "Invalid_Key" {
		t.Errorf("wrong key: Deliver = %v, %v; want false and Invalid_Key", retry, err)
	}
	m := mcRejects(t, srv, "md-key")
	srv.Fail500(1)
	if retry, err := m.Deliver(ctx, mcSuppression(t, "jan@example.com", optin.SuppressHardBounce)); !retry || err == nil {
		t.Errorf("GeneralError: Deliver = %v, %v; want true and an error", retry, err)
	}
	srv.Fail429(1, 3*time.Second)
	retry, err = m.Deliver(ctx, mcSuppression(t, "jan@example.com", optin.SuppressHardBounce))
	var le *webhooks.LaterError
	if !retry || !errors.As(err, &le) || le.After != 3*time.Second {
		t.Errorf("429: Deliver = %v, %v; want true and a LaterError of 3s", retry, err)
	}
	if n := len(srv.Rejects()); n != 0 {
		t.Errorf("%d rejects added by refused calls", n)
	}
}

func TestRejectsWants(t *testing.T) {
	srv := mailchimptest.New(t, mailchimptest.Options{})
	m := mcRejects(t, srv, "k", "newsletter")
	tests := []struct {
		name string
		e    optin.Event
		want bool
	}{
		{"hard bounce", optin.Event{Type: optin.EventSuppressionAdded, Details: []byte(`{"reason":"hard_bounce"}`)}, true},
		{"unsubscribed from all", optin.Event{Type: optin.EventSuppressionAdded, Details: []byte(`{"reason":"unsubscribed_all"}`)}, true},
		{"erased", optin.Event{Type: optin.EventSuppressionAdded, Details: []byte(`{"reason":"erased"}`)}, true},
		{"reported by Mandrill: it has it", optin.Event{Type: optin.EventSuppressionAdded, Actor: "webhook:mandrill", Details: []byte(`{"reason":"hard_bounce"}`)}, false},
		{"from Mailchimp's audience: Mandrill has not", optin.Event{Type: optin.EventSuppressionAdded, Actor: "webhook:mailchimp", Details: []byte(`{"reason":"hard_bounce"}`)}, true},
		{"withdrawal of a configured purpose", optin.Event{Type: optin.EventConsentWithdrawn, Purpose: "newsletter"}, true},
		{"withdrawal of another purpose", optin.Event{Type: optin.EventConsentWithdrawn, Purpose: "orders"}, false},
		{"a mcSuppression removed", optin.Event{Type: optin.EventSuppressionRemoved, Details: []byte(`{"reason":"manual"}`)}, false},
		{"an erasure: the erased suppression, with its notice's address", optin.Event{Type: optin.EventSubjectErased}, true},
	}
	for _, tt := range tests {
		if got := m.Wants(tt.e); got != tt.want {
			t.Errorf("%s: Wants = %v, want %v", tt.name, got, tt.want)
		}
	}

	only, err := webhooks.NewMandrillRejects(webhooks.RejectsOptions{APIKey: "k", Reasons: []optin.SuppressionReason{optin.SuppressHardBounce}})
	if err != nil {
		t.Fatal(err)
	}
	if only.Wants(optin.Event{Type: optin.EventSuppressionAdded, Details: []byte(`{"reason":"unsubscribed_all"}`)}) {
		t.Error("a reason left out of Reasons is wanted")
	}
	if only.Wants(optin.Event{Type: optin.EventSubjectErased}) {
		t.Error("an erasure is wanted without erased among the Reasons")
	}
}
