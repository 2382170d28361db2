package webhooks

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

// mandrillPost is the form and headers of a signed POST of events; sig
// "" signs it right.
func (f *fixture) mandrillPost(events []byte, sig string) ([]byte, http.Header) {
	form := url.Values{"mandrill_events": {string(events)}}
	if sig == "" {
		sig = MandrillSignature(testMandrillKey, f.url+"/webhooks/mandrill", form)
	}
	return []byte(form.Encode()), http.Header{"X-Mandrill-Signature": {sig}}
}

func TestMandrillBatch(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	body, h := f.mandrillPost(sample(t, "mandrill/batch.json"), "")

	// A wrong signature, a missing one, and one for another URL record nothing.
	_, other := f.mandrillPost(sample(t, "mandrill/batch.json"), MandrillSignature(testMandrillKey, "https://elsewhere.example/webhooks/mandrill",
		url.Values{"mandrill_events": {string(sample(t, "mandrill/batch.json"))}}))
	for name, header := range map[string]http.Header{
		"wrong":     {"X-Mandrill-Signature": {string(sample(t, "mandrill/wrong_signature.txt"))}},
		"missing":   nil,
		"other url": other,
	} {
		if r := f.do(http.MethodPost, "/webhooks/mandrill", formType, body, header); r.status != http.StatusUnauthorized {
			t.Errorf("%s signature: %d %s, want 401", name, r.status, r.body)
		}
	}
	if n := f.eventCount(); n != 0 {
		t.Fatalf("%d events recorded from unsigned batches", n)
	}

	if r := f.do(http.MethodPost, "/webhooks/mandrill", formType, body, h); r.status != http.StatusOK {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	for _, tt := range []struct {
		email string
		want  []optin.SuppressionReason
	}{
		{"bounced@example.com", []optin.SuppressionReason{optin.SuppressHardBounce}},
		{"complainer@example.com", []optin.SuppressionReason{optin.SuppressComplaint}},
		{"leaver-all@example.com", []optin.SuppressionReason{optin.SuppressUnsubscribedAll}},
		{"denylisted@example.com", []optin.SuppressionReason{optin.SuppressHardBounce}},
		{"leaver@example.com", nil},
	} {
		if got := f.suppressions(tt.email); !slices.Equal(got, tt.want) {
			t.Errorf("%s: suppressions %v, want %v", tt.email, got, tt.want)
		}
	}
	if c := f.consent("leaver@example.com", "newsletter"); c == nil || c.Status != optin.StatusWithdrawn || c.Source != SourceMandrill ||
		!c.UpdatedAt.Equal(time.Unix(1700000030, 0)) {
		t.Errorf("unsub with a purpose: %+v, want newsletter withdrawn at the event's time", c)
	}
	// send, open, soft_bounce, a reject without a reason and a sync event
	// record nothing.
	for _, email := range []string{"sent@example.com", "full@example.com", "rejected@example.com", "synced@example.com"} {
		if v := f.subject(email); v != nil {
			t.Errorf("%s: %+v recorded, want nothing", email, v)
		}
	}
	if n := f.eventCount(); n != 5 {
		t.Errorf("%d events, want 5", n)
	}
	for outcome, want := range map[string]float64{"applied": 5, "ignored": 5, "rejected": 3} {
		if got := f.metric("optinproxy_webhook_events_total", map[string]string{"source": "mandrill", "outcome": outcome}); got != want {
			t.Errorf("%s counted %v, want %v", outcome, got, want)
		}
	}

	// The same batch again: every event is a duplicate.
	if r := f.do(http.MethodPost, "/webhooks/mandrill", formType, body, h); r.status != http.StatusOK {
		t.Fatalf("second POST: %d %s", r.status, r.body)
	}
	if n := f.eventCount(); n != 5 {
		t.Errorf("%d events after the repeat, want 5", n)
	}
	if got := f.metric("optinproxy_webhook_events_total", map[string]string{"source": "mandrill", "outcome": "duplicate"}); got != 5 {
		t.Errorf("duplicates counted %v, want 5", got)
	}
}

func TestMandrillHead(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	if r := f.do(http.MethodHead, "/webhooks/mandrill", "", nil, nil); r.status != http.StatusOK {
		t.Errorf("HEAD: %d", r.status)
	}
	f = newFixture(t, fileStore(t), func(o *ReceiverOptions) { o.Mandrill = MandrillOptions{} })
	if r := f.do(http.MethodHead, "/webhooks/mandrill", "", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("HEAD without a key configured: %d, want 404", r.status)
	}
}

func TestMandrillMalformed(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	many := make([]json.RawMessage, maxMandrillEvents+1)
	for i := range many {
		many[i] = json.RawMessage(fmt.Sprintf(`{"event":"send","_id":"m%d","ts":1700000000,"msg":{"email":"a@example.com"}}`, i))
	}
	tooMany, _ := json.Marshal(many)
	for _, tt := range []struct {
		events string
		want   string
	}{
		{"", `field "mandrill_events": required`},
		{"{}", `field "mandrill_events": not a JSON array`},
		{"[{", `field "mandrill_events"`},
		{string(tooMany), `field "mandrill_events": 1001 events, at most 1000`},
	} {
		body, h := f.mandrillPost([]byte(tt.events), "")
		r := f.do(http.MethodPost, "/webhooks/mandrill", formType, body, h)
		if r.status != http.StatusBadRequest || !strings.Contains(errorMessage(t, r.body), tt.want) {
			t.Errorf("%.20q: %d %s, want 400 with %q", tt.events, r.status, r.body, tt.want)
		}
	}
	// An event without a valid address is skipped; its neighbours apply.
	body, h := f.mandrillPost([]byte(`[
		{"event":"hard_bounce","_id":"x1","ts":1700000000,"msg":{"email":"not an address"}},
		{"event":"hard_bounce","_id":"x2","ts":1700000000,"msg":{"email":"ok@example.com"}}]`), "")
	if r := f.do(http.MethodPost, "/webhooks/mandrill", formType, body, h); r.status != http.StatusOK {
		t.Fatalf("batch with one bad event: %d %s", r.status, r.body)
	}
	if got := f.suppressions("ok@example.com"); len(got) != 1 {
		t.Errorf("the good event's suppression: %v", got)
	}
	if got := f.metric("optinproxy_webhook_events_total", map[string]string{"source": "mandrill", "outcome": "invalid"}); got != 5 {
		t.Errorf("invalid counted %v, want 5 (4 batches, 1 event)", got)
	}
}

// TestComplaintRate: spam events against the copies the relay counted
// for the sender's domain, as metrics and a warning once a day per level.
func TestComplaintRate(t *testing.T) {
	clock := testtools.NewClock(time.Now())
	rates := optin.NewDomainRates(clock.Now)
	rates.Sent("shop.example", 1000)
	f := newFixture(t, fileStore(t), func(o *ReceiverOptions) { o.Rates = rates })
	spam := func(n int) {
		t.Helper()
		var events []string
		for i := range n {
			events = append(events, fmt.Sprintf(`{"event":"spam","_id":"spam-%d-%d","ts":1700000000,"msg":{"email":"c%d-%d@example.com","sender":"news@Shop.Example"}}`,
				f.eventCount(), i, f.eventCount(), i))
		}
		body, h := f.mandrillPost([]byte("["+strings.Join(events, ",")+"]"), "")
		if r := f.do(http.MethodPost, "/webhooks/mandrill", formType, body, h); r.status != http.StatusOK {
			t.Fatalf("POST: %d %s", r.status, r.body)
		}
	}
	spam(1) // 0.1%: not over it
	if got := f.metric("optinproxy_complaint_rate", map[string]string{"domain": "shop.example"}); got != 0.001 {
		t.Errorf("rate %v, want 0.001", got)
	}
	if strings.Contains(f.logs.String(), "complaint rate") {
		t.Errorf("warned at exactly 0.1%%: %s", f.logs)
	}
	spam(1) // 0.2%: over 0.1%
	spam(1) // 0.3%: at the limit
	spam(1) // 0.4%: warned about already today
	logs := f.logs.String()
	if n := strings.Count(logs, "over 0.1%"); n != 1 {
		t.Errorf("%d warnings at 0.1%%, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "at or over 0.3%"); n != 1 {
		t.Errorf("%d errors at 0.3%%, want 1:\n%s", n, logs)
	}
	if got := f.metric("optinproxy_complaints_total", map[string]string{"domain": "shop.example"}); got != 4 {
		t.Errorf("complaints counted %v, want 4", got)
	}
	if strings.Contains(logs, "@example.com") {
		t.Errorf("an address in the log:\n%s", logs)
	}
	// The gauge is the rate as of the scrape: a day later the complaints
	// (and copies) have left the window.
	if got := f.metric("optinproxy_complaint_rate", map[string]string{"domain": "shop.example"}); got != 0.004 {
		t.Errorf("rate %v, want 0.004", got)
	}
	clock.Advance(25 * time.Hour)
	rates.Sent("shop.example", 10)
	if got := f.metric("optinproxy_complaint_rate", map[string]string{"domain": "shop.example"}); got != 0 {
		t.Errorf("rate a day later %v, want 0", got)
	}
}
