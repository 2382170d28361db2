package webhooks

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

var crmIDs atomic.Int64

// crmHeader signs body as a CRM would at ts, with a new webhook-id when id
// is "".
func crmHeader(t testing.TB, id string, ts time.Time, body string) http.Header {
	t.Helper()
	if id == "" {
		id = "msg_" + strconv.FormatInt(crmIDs.Add(1), 10)
	}
	sig, err := SignStandard(testCRMSecret, id, ts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{HeaderID: {id}, HeaderTimestamp: {strconv.FormatInt(ts.Unix(), 10)}, HeaderSignature: {sig}}
}

func (f *fixture) crm(body string, h http.Header) reply {
	f.t.Helper()
	return f.do(http.MethodPost, "/webhooks/crm", "application/json", []byte(body), h)
}

func TestCRMSignature(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	body := `{"type":"consent.granted","email":"Ann@Example.com","purpose":"newsletter","evidence":{"ip":"192.0.2.7","form":"signup"}}`
	now := time.Now()

	wrong := crmHeader(t, "", now, body)
	wrong.Set(HeaderSignature, "v1,"+strings.Repeat("A", 44))
	otherBody := crmHeader(t, "", now, body+" ")
	for name, h := range map[string]http.Header{
		"wrong":         wrong,
		"missing":       {HeaderID: {"msg_x"}, HeaderTimestamp: {strconv.FormatInt(now.Unix(), 10)}},
		"another body":  otherBody,
		"stale":         crmHeader(t, "", now.Add(-6*time.Minute), body),
		"in the future": crmHeader(t, "", now.Add(6*time.Minute), body),
	} {
		r := f.crm(body, h)
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s signature: %d %s, want 401", name, r.status, r.body)
		}
		if name == "stale" && !strings.Contains(r.body, "timestamp") {
			t.Errorf("stale: %s does not say why", r.body)
		}
	}
	if n := f.eventCount(); n != 0 {
		t.Fatalf("%d events recorded from badly signed deliveries", n)
	}

	if r := f.crm(body, crmHeader(t, "", now, body)); r.status != http.StatusOK {
		t.Fatalf("signed: %d %s", r.status, r.body)
	}
	c := f.consent("ann@example.com", "newsletter")
	if c == nil || c.Status != optin.StatusGranted || c.Source != optin.SourceCRM || c.Basis != optin.BasisConsent ||
		!c.GrantedAt.Equal(time.Unix(now.Unix(), 0)) {
		t.Fatalf("consent = %+v, want granted by the crm at webhook-timestamp", c)
	}
	if c.Evidence == nil || c.Evidence.IP != "192.0.2.7" || c.Evidence.Extra["form"] != "signup" {
		t.Errorf("evidence = %+v", c.Evidence)
	}
	if ev := f.subject("ann@example.com").Events; len(ev) != 1 || ev[0].Actor != ActorCRM {
		t.Errorf("events = %+v", ev)
	}
}

// TestCRMEvents applies each event type in turn to one subject.
func TestCRMEvents(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	steps := []struct {
		name   string
		body   string
		events int // recorded by this step
		check  func(t *testing.T)
	}{
		{"grant with basis", `{"type":"consent.granted","email":"bob@example.com","purpose":"offers","basis":"consent","occurred_at":"` + at(-time.Hour) + `"}`, 1, func(t *testing.T) {
			if c := f.consent("bob@example.com", "offers"); c == nil || c.Basis != optin.BasisConsent || !c.GrantedAt.Equal(now.Add(-time.Hour)) {
				t.Errorf("offers = %+v", c)
			}
		}},
		{"withdraw", `{"type":"consent.withdrawn","email":"bob@example.com","purpose":"offers","occurred_at":"` + at(-30*time.Minute) + `"}`, 1, func(t *testing.T) {
			if c := f.consent("bob@example.com", "offers"); c == nil || c.Status != optin.StatusWithdrawn {
				t.Errorf("offers = %+v", c)
			}
		}},
		{"older grant ignored", `{"type":"consent.granted","email":"bob@example.com","purpose":"offers","occurred_at":"` + at(-45*time.Minute) + `"}`, 0, func(t *testing.T) {
			if c := f.consent("bob@example.com", "offers"); c == nil || c.Status != optin.StatusWithdrawn {
				t.Errorf("offers = %+v, want the newer withdrawal", c)
			}
		}},
		{"grant newsletter", `{"type":"consent.granted","email":"bob@example.com","purpose":"newsletter","occurred_at":"` + at(-20*time.Minute) + `","unknown":"tolerated"}`, 1, nil},
		{"updated", `{"type":"subject.updated","email":"bob@example.com","new_email":"robert@example.com","occurred_at":"` + at(-10*time.Minute) + `"}`, 5, func(t *testing.T) {
			// copies of offers and newsletter, two subject.updated, one withdrawal
			if c := f.consent("robert@example.com", "newsletter"); c == nil || c.Status != optin.StatusGranted {
				t.Errorf("newsletter on the new address = %+v", c)
			}
			if c := f.consent("bob@example.com", "newsletter"); c == nil || c.Status != optin.StatusWithdrawn {
				t.Errorf("newsletter on the old address = %+v", c)
			}
		}},
		{"erased", `{"type":"subject.erased","email":"robert@example.com"}`, 1, func(t *testing.T) {
			if s := f.suppressions("robert@example.com"); !slices.Equal(s, []optin.SuppressionReason{optin.SuppressErased}) {
				t.Errorf("suppressions = %v", s)
			}
			if v := f.subject("robert@example.com"); !v.Erased || len(v.Consents) != 0 {
				t.Errorf("after the erasure: erased %v, consents %+v; want erased, none", v.Erased, v.Consents)
			}
		}},
		{"erased again", `{"type":"subject.erased","email":"robert@example.com"}`, 0, nil},
	}
	for _, s := range steps {
		before := f.eventCount()
		if r := f.crm(s.body, crmHeader(t, "", now, s.body)); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", s.name, r.status, r.body)
		}
		if got := f.eventCount() - before; got != s.events {
			t.Errorf("%s: %d events, want %d", s.name, got, s.events)
		}
		if s.check != nil {
			s.check(t)
		}
	}
}

func TestCRMMalformed(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	for _, tt := range []struct {
		body, want string
	}{
		{`{"type":"consent.granted","email":"a@example.com"}`, `field "purpose": required for consent.granted`},
		{`{"type":"consent.withdrawn","email":"a@example.com"}`, `field "purpose": required for consent.withdrawn`},
		{`{"email":"a@example.com","purpose":"newsletter"}`, `field "type": required`},
		{`{"type":"consent.granted","purpose":"newsletter"}`, `field "email": required`},
		{`{"type":"consent.exploded","email":"a@example.com"}`, `field "type": "consent.exploded" is not one of`},
		{`{"type":"consent.granted","email":"a@","purpose":"newsletter"}`, `field "email"`},
		{`{"type":"consent.granted","email":"a@example.com","purpose":"nope"}`, `field "purpose": "nope" is not configured`},
		{`{"type":"consent.granted","email":"a@example.com","purpose":"newsletter","basis":"whim"}`, `field "basis"`},
		{`{"type":"consent.granted","email":"a@example.com","purpose":"newsletter","occurred_at":"yesterday"}`, `field "occurred_at": not RFC 3339`},
		{`{"type":"consent.granted","email":"a@example.com","purpose":"newsletter","evidence":{"n":1}}`, `field "evidence"`},
		{`{"type":"subject.updated","email":"a@example.com"}`, `field "new_email": required`},
		{`[1,2]`, `field "body"`},
		// Found by FuzzParseCRM: everything after the first object was ignored.
		{`{"type":"subject.erased","email":"a@example.com"} trailing`, `field "body": more than one JSON value`},
		{"{\"type\":\"subject.erased\",\"email\":\"a@example.com\"}\n{\"type\":\"subject.erased\",\"email\":\"b@example.com\"}", `field "body": more than one JSON value`},
	} {
		r := f.crm(tt.body, crmHeader(t, "", time.Now(), tt.body))
		if r.status != http.StatusBadRequest || !strings.Contains(errorMessage(t, r.body), tt.want) {
			t.Errorf("%s: %d %s, want 400 with %q", tt.body, r.status, r.body, tt.want)
		}
		if errorCode(t, r.body) != "bad_request" {
			t.Errorf("%s: %s has no bad_request code", tt.body, r.body)
		}
	}
	if n := f.eventCount(); n != 0 {
		t.Errorf("%d events recorded", n)
	}
}

// TestCRMDuplicate delivers one webhook-id twice, on the file store and
// on Redis: the second changes nothing.
func TestCRMDuplicate(t *testing.T) {
	for name, open := range storeOpeners {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, open(t), nil)
			body := `{"type":"consent.granted","email":"dup@example.com","purpose":"newsletter"}`
			h := crmHeader(t, "msg_dup", time.Now(), body)
			for i := range 2 {
				if r := f.crm(body, h); r.status != http.StatusOK {
					t.Fatalf("delivery %d: %d %s", i+1, r.status, r.body)
				}
			}
			// A retry is signed anew: same id, a later timestamp.
			if r := f.crm(body, crmHeader(t, "msg_dup", time.Now().Add(time.Second), body)); r.status != http.StatusOK {
				t.Fatalf("re-signed retry: %d %s", r.status, r.body)
			}
			if n := f.eventCount(); n != 1 {
				t.Errorf("%d events, want 1", n)
			}
			if got := f.metric("optinproxy_webhook_events_total", map[string]string{"source": "crm", "outcome": "duplicate"}); got != 2 {
				t.Errorf("duplicates counted %v, want 2", got)
			}
		})
	}
}

func TestCRMNotConfigured(t *testing.T) {
	f := newFixture(t, fileStore(t), func(o *ReceiverOptions) { o.CRM = CRMOptions{} })
	if r := f.crm(`{}`, nil); r.status != http.StatusNotFound {
		t.Errorf("POST without a secret configured: %d, want 404", r.status)
	}
	_, err := NewReceiver(ReceiverOptions{Ledger: f.ledger, Marks: f.marks, CRM: CRMOptions{Secret: "whsec_short"}})
	if err == nil {
		t.Error("NewReceiver took a bad CRM secret")
	}
	_, err = NewReceiver(ReceiverOptions{Ledger: f.ledger, Marks: f.marks, Mailchimp: MailchimpOptions{Secret: "s", Lists: map[string]string{"l": "nope"}}})
	if err == nil {
		t.Error("NewReceiver took a list mapped to an unknown purpose")
	}
	_, err = NewReceiver(ReceiverOptions{Ledger: f.ledger, Marks: f.marks, Mandrill: MandrillOptions{Key: "k"}})
	if err == nil {
		t.Error("NewReceiver took a Mandrill key without its URL")
	}
}

// TestSlowStoreAnswers503InTime: a store that does not answer within the
// receiver's Timeout gets the sender a 503 (it retries), not a request
// held past its own deadline; once the store answers, the retry applies.
func TestSlowStoreAnswers503InTime(t *testing.T) {
	srv := redistest.Start(t)
	f := newFixture(t, teststore.Redis(t, srv), func(o *ReceiverOptions) { o.Timeout = 300 * time.Millisecond })
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	body := `{"type":"consent.granted","email":"slow@example.com","purpose":"newsletter"}`
	h := crmHeader(t, "msg_slow", time.Now(), body)
	// Every other client's commands wait two seconds.
	if err := admin.ClientPause(context.Background(), 2*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if r := f.crm(body, h); r.status != http.StatusServiceUnavailable || errorCode(t, r.body) != "unavailable" {
		t.Fatalf("paused store: %d %s, want 503 unavailable", r.status, r.body)
	}
	admin.ClientUnpause(context.Background())
	if r := f.crm(body, crmHeader(t, "msg_slow", time.Now(), body)); r.status != http.StatusOK {
		t.Fatalf("the retry: %d %s", r.status, r.body)
	}
	if c := f.consent("slow@example.com", "newsletter"); c == nil || c.Status != optin.StatusGranted {
		t.Errorf("consent after the retry: %+v", c)
	}
}

// TestCRMErasureOfUnknownAddress: an erasure of an address the ledger
// holds nothing about still blocks it.
func TestCRMErasureOfUnknownAddress(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	body := `{"type":"subject.erased","email":"stranger@example.com"}`
	if r := f.crm(body, crmHeader(t, "", time.Now(), body)); r.status != http.StatusOK {
		t.Fatalf("erasure: %d %s", r.status, r.body)
	}
	if s := f.suppressions("stranger@example.com"); !slices.Equal(s, []optin.SuppressionReason{optin.SuppressErased}) {
		t.Errorf("suppressions = %v, want erased", s)
	}
}
