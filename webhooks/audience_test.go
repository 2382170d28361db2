package webhooks_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"optinproxy/internal/mailchimptest"
	"optinproxy/optin"
	"optinproxy/webhooks"
)

func mcWithdrawal(t testing.TB, email string) webhooks.Delivery {
	return webhooks.Delivery{ID: "ev1", Attempt: 1, Event: optin.Event{
		ID: "ev1", Type: optin.EventConsentWithdrawn, Subject: mcAddr(t, email), Purpose: "newsletter", Actor: "api-token",
		Details: []byte(`{"status":"withdrawn","basis":"consent","source":"unsubscribe"}`),
	}}
}

func TestAudienceName(t *testing.T) {
	_, c := mcServer(t)
	a, err := webhooks.NewAudience(webhooks.AudienceOptions{Client: c, ListID: "A1b2_C3", Purpose: "newsletter"})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Name(); got != "mailchimp-a1b2-c3" {
		t.Errorf("Name() = %q", got)
	}
}

func TestAudienceWithdrawalUnsubscribes(t *testing.T) {
	srv, c := mcServer(t)
	srv.AddMember(mcList, mailchimptest.Member{EmailAddress: "Jan@Example.com", Status: "subscribed"})
	retry, err := mcAudience(t, c).Deliver(context.Background(), mcWithdrawal(t, " Jan@Example.COM "))
	if err != nil || retry {
		t.Fatalf("Deliver = %v, %v; want false, nil", retry, err)
	}
	m, _ := srv.Member(mcList, "jan@example.com")
	if m.Status != "unsubscribed" {
		t.Errorf("status = %q, want unsubscribed", m.Status)
	}
	calls := srv.Calls()
	want := "/3.0/lists/" + mcList + "/members/91f404578a2d58d0d4a9065d16c5a051" // md5("jan@example.com")
	if len(calls) != 1 || calls[0].Method != "PATCH" || calls[0].Path != want || string(calls[0].Body) != `{"status":"unsubscribed"}` {
		t.Errorf("calls = %+v; want one PATCH %s", calls, want)
	}
}

func TestSubscriberHash(t *testing.T) {
	// md5("jan@example.com"), computed with md5sum.
	const want = "91f404578a2d58d0d4a9065d16c5a051"
	if got := webhooks.SubscriberHash(" Jan@Example.COM "); got != want {
		t.Errorf("SubscriberHash = %s, want %s", got, want)
	}
}

func TestAudienceNonMemberIsDone(t *testing.T) {
	_, c := mcServer(t)
	retry, err := mcAudience(t, c).Deliver(context.Background(), mcWithdrawal(t, "nobody@example.com"))
	if err != nil || retry {
		t.Fatalf("Deliver = %v, %v; want false, nil", retry, err)
	}
}

func TestAudienceErasureDeletesPermanently(t *testing.T) {
	srv, c := mcServer(t)
	srv.AddMember(mcList, mailchimptest.Member{EmailAddress: "jan@example.com", Status: "subscribed"})
	a := mcAudience(t, c)
	d := webhooks.Delivery{ID: "ev2", Attempt: 1, Event: optin.Event{ID: "ev2", Type: optin.EventSubjectErased, Subject: mcAddr(t, "jan@example.com"), Actor: "api-token"}}
	for i := range 2 { // the second finds nothing to delete: done as well
		if retry, err := a.Deliver(context.Background(), d); err != nil || retry {
			t.Fatalf("Deliver #%d = %v, %v; want false, nil", i+1, retry, err)
		}
	}
	if _, ok := srv.Member(mcList, "jan@example.com"); ok {
		t.Error("the member is still there")
	}
	calls := srv.Calls()
	if len(calls) != 2 || calls[0].Method != "POST" || !strings.HasSuffix(calls[0].Path, "/members/91f404578a2d58d0d4a9065d16c5a051/actions/delete-permanent") || calls[0].Status != 204 {
		t.Errorf("calls = %+v", calls)
	}
}

// TestAudienceErasedSuppressionDeletes: a CRM's erasure arrives as the
// erased suppression; Mailchimp's copy of the member goes too, while any
// other suppression only unsubscribes.
func TestAudienceErasedSuppressionDeletes(t *testing.T) {
	srv, c := mcServer(t)
	srv.AddMember(mcList, mailchimptest.Member{EmailAddress: "jan@example.com", Status: "subscribed"})
	srv.AddMember(mcList, mailchimptest.Member{EmailAddress: "piet@example.com", Status: "subscribed"})
	a := mcAudience(t, c)
	for _, tc := range []struct{ email, reason string }{{"jan@example.com", "erased"}, {"piet@example.com", "hard_bounce"}} {
		d := webhooks.Delivery{ID: "ev-" + tc.reason, Attempt: 1, Event: optin.Event{ID: "ev-" + tc.reason, Type: optin.EventSuppressionAdded,
			Subject: mcAddr(t, tc.email), Actor: "webhook:crm", Details: []byte(`{"reason":"` + tc.reason + `"}`)}}
		if retry, err := a.Deliver(context.Background(), d); err != nil || retry {
			t.Fatalf("%s: Deliver = %v, %v", tc.reason, retry, err)
		}
	}
	if _, ok := srv.Member(mcList, "jan@example.com"); ok {
		t.Error("the erased member is still there")
	}
	if m, ok := srv.Member(mcList, "piet@example.com"); !ok || m.Status != "unsubscribed" {
		t.Errorf("the bounced member: %+v %v, want unsubscribed", m, ok)
	}
}

func TestAudienceErasedSubjectIsNotRetried(t *testing.T) {
	_, c := mcServer(t)
	d := webhooks.Delivery{ID: "ev3", Event: optin.Event{ID: "ev3", Type: optin.EventSubjectErased, Erased: true}}
	retry, err := mcAudience(t, c).Deliver(context.Background(), d)
	if retry || err == nil || !strings.Contains(err.Error(), "erased") {
		t.Fatalf("Deliver = %v, %v; want false and an error saying the mcSubject was erased", retry, err)
	}
}

func TestAudienceWants(t *testing.T) {
	_, c := mcServer(t)
	a := mcAudience(t, c)
	tests := []struct {
		name string
		e    optin.Event
		want bool
	}{
		{"withdrawal of the purpose", optin.Event{Type: optin.EventConsentWithdrawn, Purpose: "newsletter", Actor: "api"}, true},
		{"withdrawal of another purpose", optin.Event{Type: optin.EventConsentWithdrawn, Purpose: "events", Actor: "api"}, false},
		{"a grant: never sent", optin.Event{Type: optin.EventConsentGranted, Purpose: "newsletter"}, false},
		{"any suppression", optin.Event{Type: optin.EventSuppressionAdded, Details: []byte(`{"reason":"complaint"}`)}, true},
		{"a mcSuppression removed: Mailchimp is not resubscribed", optin.Event{Type: optin.EventSuppressionRemoved}, false},
		{"an erasure", optin.Event{Type: optin.EventSubjectErased, Actor: "api"}, true},
		{"an erasure already unreadable: Deliver says why", optin.Event{Type: optin.EventSubjectErased, Erased: true}, true},
		{"from Mailchimp's webhook: no echo", optin.Event{Type: optin.EventConsentWithdrawn, Purpose: "newsletter", Actor: "webhook:mailchimp"}, false},
		{"from the sync: no echo", optin.Event{Type: optin.EventSuppressionAdded, Actor: "sync:mailchimp"}, false},
		{"source mailchimp: no echo", optin.Event{Type: optin.EventConsentWithdrawn, Purpose: "newsletter", Actor: "api", Details: []byte(`{"source":"mailchimp"}`)}, false},
		{"from Mandrill: Mailchimp still needs it", optin.Event{Type: optin.EventSuppressionAdded, Actor: "webhook:mandrill", Details: []byte(`{"reason":"hard_bounce"}`)}, true},
	}
	for _, tt := range tests {
		if got := a.Wants(tt.e); got != tt.want {
			t.Errorf("%s: Wants = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAudienceRefusals(t *testing.T) {
	srv, c := mcServer(t)
	srv.AddMember(mcList, mailchimptest.Member{EmailAddress: "jan@example.com", Status: "subscribed"})
	a := mcAudience(t, c)
	ctx := context.Background()

	srv.Fail429(1, 7*time.Second)
	retry, err := a.Deliver(ctx, mcWithdrawal(t, "jan@example.com"))
	var le *webhooks.LaterError
	if !retry || !errors.As(err, &le) || le.After != 7*time.Second {
		t.Errorf("429: Deliver = %v, %v; want true and a LaterError of 7s", retry, err)
	}

	srv.Fail500(1)
	if retry, err := a.Deliver(ctx, mcWithdrawal(t, "jan@example.com")); !retry || err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("500: Deliver = %v, %v; want true and an error naming 500", retry, err)
	}

	wrong, err := webhooks.NewMailchimpClient(webhooks.MailchimpClientOptions{APIKey: "wrong-us6", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	retry, err = mcAudience(t, wrong).Deliver(ctx, mcWithdrawal(t, "jan@example.com"))
	var ae *webhooks.APIError
	if retry || !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(err.Error(), "API Key Invalid") {
		t.Errorf("401: Deliver = %v, %v; want false and the problem's title", retry, err)
	}
	if strings.Contains(err.Error(), "jan") || strings.Contains(err.Error(), "91f404") {
		t.Errorf("error %q names the member", err)
	}

	if m, _ := srv.Member(mcList, "jan@example.com"); m.Status != "subscribed" {
		t.Errorf("status = %q after refusals only", m.Status)
	}
}

// TestAudienceConnectionCap sends 50 updates at once: the API never sees
// more than 10 requests or connections at a time, Mailchimp's limit.
func TestAudienceConnectionCap(t *testing.T) {
	srv, c := mcServer(t)
	srv.SetDelay(20 * time.Millisecond)
	a := mcAudience(t, c)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		email := "user" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "@example.com"
		srv.AddMember(mcList, mailchimptest.Member{EmailAddress: email, Status: "subscribed"})
		wg.Go(func() {
			if _, err := a.Deliver(context.Background(), mcWithdrawal(t, email)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(srv.Calls()); n != 50 {
		t.Errorf("%d calls, want 50", n)
	}
	reqs, conns := srv.MaxConcurrent(), srv.MaxConns()
	t.Logf("at most %d requests and %d connections at once", reqs, conns)
	if reqs > webhooks.MaxAPIConns || conns > webhooks.MaxAPIConns {
		t.Errorf("%d requests, %d connections at once; the limit is %d", reqs, conns, webhooks.MaxAPIConns)
	}
}

// TestAudienceInternationalDomain: a member Mailchimp keeps under the
// ASCII form of its domain is found too.
func TestAudienceInternationalDomain(t *testing.T) {
	srv, c := mcServer(t)
	srv.AddMember(mcList, mailchimptest.Member{EmailAddress: "jan@xn--bcher-kva.de", Status: "subscribed"})
	retry, err := mcAudience(t, c).Deliver(context.Background(), mcWithdrawal(t, "jan@bücher.de"))
	if err != nil || retry {
		t.Fatalf("Deliver = %v, %v", retry, err)
	}
	if m, _ := srv.Member(mcList, "jan@xn--bcher-kva.de"); m.Status != "unsubscribed" {
		t.Errorf("status = %q", m.Status)
	}
	if calls := srv.Calls(); len(calls) != 2 || calls[0].Status != 404 || calls[1].Status != 200 {
		t.Errorf("calls = %+v; want the Unicode form, then the ASCII form", calls)
	}
}
