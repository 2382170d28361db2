package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func testEvent(t testing.TB, id, addr string, typ optin.EventType) optin.Event {
	t.Helper()
	a, err := optin.ParseAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	details := optin.ConsentDetails{Status: optin.StatusWithdrawn, Basis: "consent", Source: optin.SourceUnsubscribe,
		Evidence: &optin.Evidence{IP: "192.0.2.7", UserAgent: "Mozilla/5.0", Text: "Yes, send me news"}}.Marshal()
	return optin.Event{ID: id, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Type: typ, Subject: a,
		Purpose: "newsletter", Actor: "subject", Details: details}
}

// quickClient retries fast, so that the tests do not wait.
func quickClient() HTTPClientOptions {
	return HTTPClientOptions{Timeout: 300 * time.Millisecond, RetryMax: 2, WaitMin: time.Millisecond, WaitMax: 20 * time.Millisecond}
}

func newTestEndpoint(t testing.TB, url string, copts HTTPClientOptions) *Endpoint {
	t.Helper()
	p, err := NewEndpoint(EndpointOptions{URL: url, Secret: testSecret, Client: NewHTTPClient(copts)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEndpointDelivers(t *testing.T) {
	r := newReceiver(t, testSecret)
	p := newTestEndpoint(t, r.srv.URL+"/hook", quickClient())
	e := testEvent(t, "ev1", "Ana@Example.org", optin.EventConsentWithdrawn)
	retry, err := p.Deliver(context.Background(), Delivery{ID: DeliveryID(p.Name(), "ev1"), Event: e, Attempt: 1})
	if err != nil || retry {
		t.Fatalf("Deliver = %v, %v", retry, err)
	}
	acc, _, _, bad := r.snapshot()
	if len(acc) != 1 || bad != 0 {
		t.Fatalf("accepted %d, bad signatures %d", len(acc), bad)
	}
	if got := acc[0].header.Get(HeaderID); got != p.Name()+".ev1" {
		t.Errorf("webhook-id = %q", got)
	}
	if ct := acc[0].header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	want := Payload{ID: "ev1", Type: optin.EventConsentWithdrawn, Time: e.Time, Email: "ana@example.org", Purpose: "newsletter",
		Status: "withdrawn", Basis: "consent", Source: "unsubscribe", Actor: "subject"}
	if acc[0].payload != want {
		t.Errorf("payload = %+v, want %+v", acc[0].payload, want)
	}
	if body := string(acc[0].body); strings.Contains(body, "192.0.2.7") || strings.Contains(body, "Mozilla") || strings.Contains(body, "evidence") {
		t.Errorf("payload carries evidence: %s", body)
	}
}

// TestEndpointClassifies sends to a receiver that answers one way and
// checks what Deliver makes of it.
func TestEndpointClassifies(t *testing.T) {
	tests := []struct {
		name      string
		faults    []fault
		retry     bool
		err       string // part of the error; "" for none
		later     time.Duration
		requests  int
		client    func(*HTTPClientOptions)
		noRetries bool
	}{
		// A 500 passes within the call's own retries.
		{name: "500 then 200", faults: []fault{{status: 500}}, requests: 2},
		// Still failing after them: retry later.
		{name: "500 always", faults: []fault{{status: 500}, {status: 500}, {status: 500}}, retry: true, err: "answered 500", requests: 3},
		// A 429 with a long Retry-After is not waited for in the call.
		{name: "429 long Retry-After", faults: []fault{{status: 429, retryAfter: "120"}}, retry: true, err: "answered 429", later: 120 * time.Second, requests: 1},
		// A short one is.
		{name: "429 short Retry-After", faults: []fault{{status: 429, retryAfter: "0"}}, requests: 2},
		// 503 with a date.
		{name: "503 date", faults: []fault{{status: 503, retryAfter: time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}, retry: true, err: "answered 503", later: 59 * time.Minute, requests: 1},
		// 503 without Retry-After: a plain retry.
		{name: "503", faults: []fault{{status: 503}}, retry: true, err: "answered 503", requests: 1, noRetries: true},
		// Refused for good: no retry, one request.
		{name: "400", faults: []fault{{status: 400}}, err: "answered 400", requests: 1},
		{name: "410", faults: []fault{{status: 410}}, err: "answered 410", requests: 1},
		{name: "501", faults: []fault{{status: 501}}, err: "answered 501", requests: 1},
		// A redirect is not followed.
		{name: "302", faults: []fault{{status: 302}}, err: "answered 302", requests: 1},
		// A receiver that does not answer in time.
		{name: "timeout", faults: []fault{{hang: true}}, retry: true, err: "timeout", requests: 1, noRetries: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, testSecret)
			r.failNext(tt.faults...)
			copts := quickClient()
			if tt.noRetries {
				copts.RetryMax = -1
			}
			p := newTestEndpoint(t, r.srv.URL, copts)
			retry, err := p.Deliver(context.Background(), Delivery{ID: "hook-x.ev1", Event: testEvent(t, "ev1", "ana@example.org", optin.EventConsentWithdrawn), Attempt: 1})
			if retry != tt.retry {
				t.Errorf("retry = %v, want %v (err %v)", retry, tt.retry, err)
			}
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
			if err != nil && (strings.Contains(err.Error(), "ana@") || strings.Contains(err.Error(), "127.0.0.1")) {
				t.Errorf("error text leaks: %v", err)
			}
			var le *LaterError
			if got := errors.As(err, &le); got != (tt.later > 0) || got && (le.After < tt.later || le.After > tt.later+time.Minute+time.Second) {
				t.Errorf("LaterError = %v, want After %s", le, tt.later)
			}
			if _, n, _, _ := r.snapshot(); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
		})
	}
}

func TestEndpointConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/hook?token=s3cret"
	l.Close()
	copts := quickClient()
	copts.RetryMax = -1
	p := newTestEndpoint(t, url, copts)
	retry, err := p.Deliver(context.Background(), Delivery{ID: "hook-x.ev1", Event: testEvent(t, "ev1", "ana@example.org", optin.EventConsentGranted), Attempt: 1})
	if !retry || err == nil || err.Error() != "webhooks: connection refused" {
		t.Errorf("Deliver = %v, %v; want a retry after connection refused", retry, err)
	}
}

func TestEndpointCanceled(t *testing.T) {
	r := newReceiver(t, testSecret)
	r.failNext(fault{hang: true})
	copts := quickClient()
	copts.Timeout = time.Minute
	p := newTestEndpoint(t, r.srv.URL, copts)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if _, n, _, _ := r.snapshot(); n > 0 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	retry, err := p.Deliver(ctx, Delivery{ID: "hook-x.ev1", Event: testEvent(t, "ev1", "ana@example.org", optin.EventConsentGranted), Attempt: 1})
	if !retry || err == nil {
		t.Errorf("Deliver = %v, %v; want a retry", retry, err)
	}
}

func TestEndpointOptions(t *testing.T) {
	for _, o := range []EndpointOptions{
		{URL: "ftp://example.org/", Secret: testSecret},
		{URL: "https:///path", Secret: testSecret},
		{URL: "https://example.org/", Secret: "whsec_short"},
		{URL: "https://example.org/", Secret: testSecret, Events: []optin.EventType{""}},
	} {
		if _, err := NewEndpoint(o); err == nil {
			t.Errorf("NewEndpoint(%+v) accepted", o)
		} else if strings.Contains(err.Error(), "example.org") || strings.Contains(err.Error(), "whsec") && !strings.Contains(err.Error(), `"whsec_"`) {
			t.Errorf("error repeats the option: %v", err)
		}
	}
	p, err := NewEndpoint(EndpointOptions{URL: "https://crm.example.org/hooks", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Name(); !strings.HasPrefix(n, "hook-") || len(n) != 13 || !validTargetName(n) || n != EndpointName("https://crm.example.org/hooks") {
		t.Errorf("Name = %q", n)
	}
	all := p
	some, _ := NewEndpoint(EndpointOptions{URL: "https://crm.example.org/hooks", Secret: testSecret, Events: []optin.EventType{optin.EventConsentWithdrawn}})
	for _, tt := range []struct {
		p    *Endpoint
		typ  optin.EventType
		want bool
	}{
		{all, optin.EventConsentGranted, true},
		{all, optin.EventSubjectErased, true},
		{all, optin.EventMessageRelayed, false}, // receipts: never by default
		{some, optin.EventConsentWithdrawn, true},
		{some, optin.EventConsentGranted, false},
	} {
		if got := tt.p.Wants(optin.Event{Type: tt.typ}); got != tt.want {
			t.Errorf("Wants(%s) = %v", tt.typ, got)
		}
	}
}

func TestPayload(t *testing.T) {
	upd := testEvent(t, "ev2", "ana@example.org", optin.EventSubjectUpdated)
	upd.Details = json.RawMessage(`{"new_email":"ana@example.net","old_email":"x"}`)
	sup := testEvent(t, "ev3", "ana@example.org", optin.EventSuppressionAdded)
	sup.Details = json.RawMessage(`{"reason":"hard_bounce"}`)
	expiring := testEvent(t, "ev5", "ana@example.org", optin.EventConsentExpiring)
	expiring.Details = json.RawMessage(`{"purpose":"newsletter","expires_at":"2027-01-31T12:00:00+01:00"}`)
	expired := testEvent(t, "ev6", "ana@example.org", optin.EventConsentExpired)
	expired.Details = json.RawMessage(`{"status":"expired","basis":"consent","source":"retention","expires_at":"2027-01-31T11:00:00Z","reason":"retention"}`)
	granted := testEvent(t, "ev7", "ana@example.org", optin.EventConsentGranted)
	granted.Details = json.RawMessage(`{"status":"granted","basis":"consent","source":"form","expires_at":"2027-01-31T11:00:00Z"}`)
	erased := optin.Event{ID: "ev4", Type: optin.EventConsentGranted, Time: time.Unix(0, 0), Purpose: "newsletter", Actor: "api", Erased: true}
	tests := []struct {
		e    optin.Event
		want string
	}{
		// subject.updated names the new address.
		{upd, `{"id":"ev2","type":"subject.updated","time":"2025-01-02T03:04:05Z","email":"ana@example.org","new_email":"ana@example.net","purpose":"newsletter","actor":"subject"}`},
		// A suppression names its reason.
		{sup, `{"id":"ev3","type":"suppression.added","time":"2025-01-02T03:04:05Z","email":"ana@example.org","purpose":"newsletter","reason":"hard_bounce","actor":"subject"}`},
		// consent.expiring says when the consent ends, so that a CRM can
		// ask for renewal before; consent.expired when and why it ended.
		{expiring, `{"id":"ev5","type":"consent.expiring","time":"2025-01-02T03:04:05Z","email":"ana@example.org","purpose":"newsletter","expires_at":"2027-01-31T11:00:00Z","actor":"subject"}`},
		{expired, `{"id":"ev6","type":"consent.expired","time":"2025-01-02T03:04:05Z","email":"ana@example.org","purpose":"newsletter","status":"expired","basis":"consent","source":"retention","reason":"retention","expires_at":"2027-01-31T11:00:00Z","actor":"subject"}`},
		// Other events keep their expiry in the ledger.
		{granted, `{"id":"ev7","type":"consent.granted","time":"2025-01-02T03:04:05Z","email":"ana@example.org","purpose":"newsletter","status":"granted","basis":"consent","source":"form","actor":"subject"}`},
		// An erased subject: no address.
		{erased, `{"id":"ev4","type":"consent.granted","time":"1970-01-01T00:00:00Z","purpose":"newsletter","actor":"api","erased":true}`},
	}
	for _, tt := range tests {
		got, err := MarshalPayload(tt.e)
		if err != nil || string(got) != tt.want {
			t.Errorf("MarshalPayload(%s) =\n%s, %v\nwant\n%s", tt.e.ID, got, err, tt.want)
		}
	}
}
