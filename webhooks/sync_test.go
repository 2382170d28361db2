package webhooks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"optinproxy/internal/mailchimptest"
	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/webhooks"
)

func mcSync(t *testing.T, c *webhooks.MailchimpClient, l *optin.Ledger, adjust ...func(*webhooks.SyncOptions)) webhooks.SyncReport {
	t.Helper()
	opts := webhooks.SyncOptions{Client: c, ListID: mcList, Purpose: "newsletter", Ledger: l}
	for _, f := range adjust {
		f(&opts)
	}
	rep, err := webhooks.SyncAudience(context.Background(), opts)
	if err != nil {
		t.Fatalf("SyncAudience: %v (report %+v)", err, rep)
	}
	return rep
}

func mcSubject(t *testing.T, l *optin.Ledger, email string) *optin.SubjectView {
	t.Helper()
	v, err := l.Store().Subject(context.Background(), mcAddr(t, email), 100)
	if errors.Is(err, optin.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mcEventCount(t *testing.T, l *optin.Ledger) int {
	t.Helper()
	n, cursor := 0, ""
	for range 1000 {
		page, err := l.Store().Events(context.Background(), optin.EventQuery{Cursor: cursor, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Events)
		if cursor = page.NextCursor; cursor == "" {
			return n
		}
	}
	t.Fatal("events do not end")
	return 0
}

// TestSyncPaging reads 2,500 members in pages of 1000.
func TestSyncPaging(t *testing.T) {
	srv, c := mcServer(t)
	opt := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	for i := range 2500 {
		srv.AddMember(mcList, mailchimptest.Member{EmailAddress: fmt.Sprintf("user%04d@example.com", i), Status: "subscribed",
			TimestampOpt: mcStamp(opt.Add(time.Duration(i) * time.Second)), IPOpt: "192.0.2.1"})
	}
	l := mcLedger(t, nil)
	rep := mcSync(t, c, l, func(o *webhooks.SyncOptions) { o.PageSize = 1000 })
	if rep.Members != 2500 || rep.Granted != 2500 || rep.Unchanged != 0 || rep.BadRows != 0 {
		t.Errorf("report = %+v; want 2500 members granted", rep)
	}
	var offsets []string
	for _, call := range srv.Calls() {
		if !strings.Contains(call.Query, "count=1000") {
			t.Errorf("query %q asks for another page size", call.Query)
		}
		for _, kv := range strings.Split(call.Query, "&") {
			if strings.HasPrefix(kv, "offset=") {
				offsets = append(offsets, kv)
			}
		}
	}
	if want := []string{"offset=0", "offset=1000", "offset=2000"}; !slices.Equal(offsets, want) {
		t.Errorf("pages %v, want %v", offsets, want)
	}
	for _, i := range []int{0, 1999, 2499} {
		v := mcSubject(t, l, fmt.Sprintf("user%04d@example.com", i))
		if v == nil || len(v.Consents) != 1 || v.Consents[0].Status != optin.StatusGranted ||
			!v.Consents[0].GrantedAt.Equal(opt.Add(time.Duration(i)*time.Second)) {
			t.Errorf("member %d: %+v", i, v)
		}
	}
}

// mcAuditMembers are one of each kind a sync meets.
func mcAuditMembers(srv *mailchimptest.Server) {
	for _, m := range []mailchimptest.Member{
		{EmailAddress: "dated@example.com", Status: "subscribed", TimestampOpt: "2025-05-01T10:00:00+00:00", IPOpt: "192.0.2.7",
			TimestampSignup: "2025-05-01T09:58:00+00:00", IPSignup: "192.0.2.8",
			MarketingPermissions: []mailchimptest.Permission{{ID: "p1", Text: "Email", Enabled: true}, {ID: "p2", Text: "Direct mail", Enabled: false}}},
		{EmailAddress: "Undated@Example.com", Status: "subscribed"},
		{EmailAddress: "left@example.com", Status: "unsubscribed", TimestampOpt: "2024-01-01T00:00:00+00:00", LastChanged: "2025-06-01T08:00:00+00:00"},
		{EmailAddress: "bounced@example.com", Status: "cleaned", LastChanged: "2025-06-02T08:00:00+00:00"},
		{EmailAddress: "waiting@example.com", Status: "pending", TimestampSignup: "2025-06-03T08:00:00+00:00"},
		{EmailAddress: "gone@example.com", Status: "archived"},
		{EmailAddress: "receipts@example.com", Status: "transactional"},
		{EmailAddress: "not an address", Status: "subscribed"},
		{EmailAddress: "badtime@example.com", Status: "subscribed", TimestampOpt: "yesterday"},
		{EmailAddress: "", Status: "subscribed"},
	} {
		srv.AddMember(mcList, m)
	}
}

// TestSyncKeepsEvidenceAndInventsNothing: Mailchimp's opt-in proof
// becomes the evidence; what it lacks stays empty; a second sync changes
// nothing.
func TestSyncKeepsEvidenceAndInventsNothing(t *testing.T) {
	srv, c := mcServer(t)
	mcAuditMembers(srv)
	l := mcLedger(t, nil)
	rep := mcSync(t, c, l, func(o *webhooks.SyncOptions) { o.PageSize = 3 })
	mcCheckReport(t, rep)
	if len(rep.Bad) != 2 {
		t.Fatalf("bad rows %+v", rep.Bad)
	}
	for _, b := range rep.Bad {
		if strings.Contains(b.Reason, "not an address") || strings.Contains(b.Reason, "badtime@") || b.MemberID == "" {
			t.Errorf("bad row %+v names the address or lacks the member id", b)
		}
	}

	v := mcSubject(t, l, "dated@example.com")
	c0 := v.Consents[0]
	opt := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	if c0.Status != optin.StatusGranted || c0.Source != "mailchimp" || !c0.GrantedAt.Equal(opt) || !c0.UpdatedAt.Equal(opt) {
		t.Errorf("dated: %+v", c0)
	}
	ev := c0.Evidence
	wantExtra := map[string]string{"timestamp_signup": "2025-05-01T09:58:00+00:00", "ip_signup": "192.0.2.8",
		"mailchimp_id":  mailchimptest.SubscriberHash("dated@example.com"),
		"permission:p1": "enabled", "permission:p1:text": "Email", "permission:p2": "disabled", "permission:p2:text": "Direct mail"}
	if ev == nil || !ev.Time.Equal(opt) || ev.IP != "192.0.2.7" || ev.PolicyVersion != "" || fmt.Sprint(ev.Extra) != fmt.Sprint(wantExtra) {
		t.Errorf("dated evidence = %+v\nwant extra %v", ev, wantExtra)
	}
	if got := c0.Gaps.Names(); !slices.Equal(got, []string{"policy_version"}) {
		t.Errorf("dated gaps = %v; Mailchimp has no policy version", got)
	}
	if e := v.Events[len(v.Events)-1]; e.Actor != "sync:mailchimp" || !strings.Contains(string(e.Details), `"file":"mailchimp:`+mcList+`"`) {
		t.Errorf("event %s by %q, details %s", e.Type, e.Actor, e.Details)
	}

	u := mcSubject(t, l, "undated@example.com").Consents[0]
	if u.Status != optin.StatusGranted || !u.GrantedAt.IsZero() || (u.Evidence != nil && !u.Evidence.Time.IsZero()) {
		t.Errorf("undated: %+v, evidence %+v; want a grant without a time", u, u.Evidence)
	}
	if got := u.Gaps.Names(); !slices.Equal(got, []string{"granted_at", "policy_version"}) {
		t.Errorf("undated gaps = %v", got)
	}

	w := mcSubject(t, l, "left@example.com").Consents[0]
	if w.Status != optin.StatusWithdrawn || !w.UpdatedAt.Equal(time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("unsubscribed: %+v", w)
	}
	b := mcSubject(t, l, "bounced@example.com")
	if len(b.Suppressions) != 1 || b.Suppressions[0].Reason != optin.SuppressHardBounce || len(b.Consents) != 0 {
		t.Errorf("cleaned: %+v", b)
	}
	for _, email := range []string{"waiting@example.com", "gone@example.com", "receipts@example.com", "badtime@example.com"} {
		if v := mcSubject(t, l, email); v != nil {
			t.Errorf("%s: recorded %+v", email, v)
		}
	}

	events := mcEventCount(t, l)
	again := mcSync(t, c, l, func(o *webhooks.SyncOptions) { o.PageSize = 3 })
	if again.Unchanged != 4 || again.Granted+again.Withdrawn+again.Suppressed+again.Pending != 0 {
		t.Errorf("second sync = %+v; want the 4 changes unchanged", again)
	}
	if n := mcEventCount(t, l); n != events {
		t.Errorf("second sync recorded %d events", n-events)
	}
}

func mcCheckReport(t *testing.T, rep webhooks.SyncReport) {
	t.Helper()
	want := webhooks.SyncReport{Members: 10, Granted: 2, Withdrawn: 1, Suppressed: 1, Undated: 1, Skipped: 3, NoAddress: 1, BadRows: 2}
	got := rep
	got.Bad = nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("report = %+v\nwant     %+v", got, want)
	}
}

// TestSyncOnRedis runs the sync, twice, on the Redis store.
func TestSyncOnRedis(t *testing.T) {
	srv, c := mcServer(t)
	mcAuditMembers(srv)
	l := mcLedger(t, teststore.Redis(t, redistest.Start(t)))
	mcCheckReport(t, mcSync(t, c, l))
	if again := mcSync(t, c, l); again.Unchanged != 4 || again.Granted+again.Withdrawn+again.Suppressed != 0 {
		t.Errorf("second sync = %+v", again)
	}
	if v := mcSubject(t, l, "dated@example.com"); v == nil || v.Consents[0].Evidence == nil || v.Consents[0].Evidence.IP != "192.0.2.7" {
		t.Errorf("dated: %+v", v)
	}
}

// TestSyncDoesNotUndoNewer: a mcWithdrawal made here after Mailchimp's
// opt-in stands; an undated grant does not replace a record.
func TestSyncDoesNotUndoNewer(t *testing.T) {
	srv, c := mcServer(t)
	srv.AddMember(mcList, mailchimptest.Member{EmailAddress: "jan@example.com", Status: "subscribed", TimestampOpt: "2025-05-01T10:00:00+00:00"})
	srv.AddMember(mcList, mailchimptest.Member{EmailAddress: "eva@example.com", Status: "subscribed"})
	l := mcLedger(t, nil)
	ctx := context.Background()
	for _, email := range []string{"jan@example.com", "eva@example.com"} {
		if _, err := l.Withdraw(ctx, mcAddr(t, email), "newsletter", optin.ConsentChange{Source: "unsubscribe"}); err != nil {
			t.Fatal(err)
		}
	}
	rep := mcSync(t, c, l)
	if rep.Unchanged != 2 || rep.Granted != 0 {
		t.Errorf("report = %+v; want both unchanged", rep)
	}
	for _, email := range []string{"jan@example.com", "eva@example.com"} {
		if s := mcSubject(t, l, email).Consents[0].Status; s != optin.StatusWithdrawn {
			t.Errorf("%s: %s", email, s)
		}
	}
}

// TestSyncDoubleOptInPurpose: Mailchimp does not say how a member opted
// in, so a double opt-in purpose records it pending.
func TestSyncDoubleOptInPurpose(t *testing.T) {
	srv, c := mcServer(t)
	srv.AddMember(mcList, mailchimptest.Member{EmailAddress: "jan@example.com", Status: "subscribed", TimestampOpt: "2025-05-01T10:00:00+00:00"})
	l := mcLedger(t, nil)
	rep := mcSync(t, c, l, func(o *webhooks.SyncOptions) { o.Purpose = "events" })
	if rep.Pending != 1 || rep.Granted != 0 {
		t.Errorf("report = %+v", rep)
	}
}

// TestSyncRetriesAPage: a 429 or 500 on a page is asked again; without
// retries it ends the sync with the API's error.
func TestSyncRetriesAPage(t *testing.T) {
	srv, c := mcServer(t)
	mcAuditMembers(srv)
	l := mcLedger(t, nil)
	srv.Fail429(2, 0)
	rep := mcSync(t, c, l, func(o *webhooks.SyncOptions) { o.Backoff = time.Millisecond })
	mcCheckReport(t, rep)

	srv.Fail500(1)
	_, err := webhooks.SyncAudience(context.Background(), webhooks.SyncOptions{Client: c, ListID: mcList, Purpose: "newsletter", Ledger: l, Retries: -1})
	var ae *webhooks.APIError
	if !errors.As(err, &ae) || ae.Status != 500 {
		t.Errorf("SyncAudience without retries = %v; want the 500", err)
	}

	srv.Fail429(1, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := webhooks.SyncAudience(ctx, webhooks.SyncOptions{Client: c, ListID: mcList, Purpose: "newsletter", Ledger: l}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled SyncAudience = %v", err)
	}
}
