package webhooks

import (
	"context"
	"strings"
	"testing"
	"time"

	"optinproxy/internal/mailchimptest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

// TestErasureNoticeReachesAudience: on both stores, an erasure made with
// a notice reaches the Mailchimp audience with its address, and the
// member is deleted permanently; one made without leaves nothing of the
// address to send, so its delivery gives up and the member stays.
func TestErasureNoticeReachesAudience(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		st, _ := k.open(t)
		const list, key = "a1b2c3d4e5", "0123456789abcdef-us6"
		srv := mailchimptest.New(t, mailchimptest.Options{APIKey: key})
		client, err := NewMailchimpClient(MailchimpClientOptions{APIKey: key, BaseURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		aud, err := NewAudience(AudienceOptions{Client: client, ListID: list, Purpose: purpose})
		if err != nil {
			t.Fatal(err)
		}
		c := newChanger(t, st)
		told, silent := mustAddr(t, "Told@Example.org"), mustAddr(t, "silent@example.org")
		for _, a := range []optin.Address{told, silent} {
			srv.AddMember(list, mailchimptest.Member{EmailAddress: a.String(), Status: "subscribed"})
			if _, err := c.ledger.Grant(context.Background(), a, purpose, optin.ConsentChange{}); err != nil {
				t.Fatal(err)
			}
		}
		runDispatcher(t, fastOptions(st, aud))
		waitCursor(t, st, aud.Name())

		ctx := context.Background()
		for _, e := range []struct {
			a      optin.Address
			notify bool
		}{{told, true}, {silent, false}} {
			if _, err := c.ledger.Erase(ctx, e.a, optin.ErasureRequest{Actor: "test", Notify: e.notify}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "both erasures done with", 10*time.Second, func() bool {
			return len(records(t, st, aud.Name(), optin.DeliveryRetired))+len(records(t, st, aud.Name(), optin.DeliveryDead)) == 2
		})
		retired, dead := records(t, st, aud.Name(), optin.DeliveryRetired), records(t, st, aud.Name(), optin.DeliveryDead)
		if len(retired) != 1 || retired[0].SubjectID != teststore.Keys.Get().SubjectID(told) || retired[0].EventType != optin.EventSubjectErased {
			t.Errorf("retired: %+v; want the erasure with a notice", retired)
		}
		if len(dead) != 1 || dead[0].SubjectID != teststore.Keys.Get().SubjectID(silent) || !strings.Contains(dead[0].LastError, "can no longer be read") {
			t.Errorf("dead: %+v; want the erasure without a notice, its address unreadable", dead)
		}
		if _, ok := srv.Member(list, told.String()); ok {
			t.Error("the member told of its erasure is still in the audience")
		}
		if m, ok := srv.Member(list, silent.String()); !ok || m.Status != "subscribed" {
			t.Errorf("the other member: %+v, %v; want it untouched", m, ok)
		}
		var deletes int
		for _, call := range srv.Calls() {
			if strings.HasSuffix(call.Path, "/actions/delete-permanent") {
				deletes++
				if !strings.Contains(call.Path, SubscriberHash(told.String())) {
					t.Errorf("delete-permanent of another member: %s", call.Path)
				}
			}
		}
		if deletes != 1 {
			t.Errorf("%d delete-permanent calls, want 1", deletes)
		}
	})
}

func mustAddr(t *testing.T, s string) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
