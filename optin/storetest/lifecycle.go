package storetest

import (
	"testing"
	"time"

	"optinproxy/optin"
)

// testReopen: state, events, chains and the ledger key survive a
// restart; events still open with their subjects' keys, and the chain
// goes on where it stopped.
func testReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness cannot reopen a store")
	}
	f := openFixture(t, h)
	a, b := f.addr("durable@example.com"), f.addr("second@example.com")
	f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour), Source: optin.SourceForm,
		Evidence: optin.Evidence{IP: "203.0.113.9", Text: "Yes please"}}))
	f.applied(f.withdraw(a, offers, optin.ConsentChange{}))
	f.applied(f.suppress(a, optin.SuppressComplaint))
	f.applied(f.receipt(a, optin.EventMessageBlocked, "<1@crm.example>"))
	f.applied(f.grant(b, orders, optin.ConsentChange{}))

	viewA, viewB := f.subject(a, 100), f.subject(b, 100)
	events := f.events(optin.EventQuery{})
	suppressions := walkSuppressions(t, f, 100)
	f.wantVerified(2, 5)

	f.reopen(t, h)

	for _, before := range []*optin.SubjectView{viewA, viewB} {
		after := f.subject(before.Address, 100)
		if len(after.Consents) != len(before.Consents) || len(after.Suppressions) != len(before.Suppressions) {
			t.Fatalf("%s after reopening: %+v, before %+v", before.Address, after, before)
		}
		for i := range before.Consents {
			sameRecord(t, "record after reopening", &after.Consents[i], &before.Consents[i])
			if (after.Consents[i].Evidence == nil) != (before.Consents[i].Evidence == nil) ||
				after.Consents[i].Evidence != nil && after.Consents[i].Evidence.IP != before.Consents[i].Evidence.IP {
				t.Errorf("evidence after reopening: %+v, before %+v", after.Consents[i].Evidence, before.Consents[i].Evidence)
			}
		}
		for i := range before.Suppressions {
			if x, y := after.Suppressions[i], before.Suppressions[i]; x.Subject != y.Subject || x.Reason != y.Reason || !x.CreatedAt.Equal(y.CreatedAt) {
				t.Errorf("suppression after reopening: %+v, before %+v", after.Suppressions[i], before.Suppressions[i])
			}
		}
		sameEvents(t, "subject's events after reopening", after.Events, before.Events)
	}
	// Events opened after the restart name their subjects: the subject
	// keys survived.
	sameEvents(t, "log after reopening", f.events(optin.EventQuery{}), events)
	checkSuppressions(t, "suppressions after reopening", walkSuppressions(t, f, 100), func() map[string]bool {
		m := map[string]bool{}
		for _, s := range suppressions {
			m[s.Subject.String()+" "+string(s.Reason)] = true
		}
		return m
	}())
	f.wantVerified(2, 5)

	// The chain goes on from the stored head.
	r := f.applied(f.receipt(a, optin.EventMessageRelayed, "<2@crm.example>"))
	if r.Event.Prev != viewA.Events[len(viewA.Events)-1].Hash {
		t.Errorf("first event after reopening: Prev %q, want the head before, %q", r.Event.Prev, viewA.Events[len(viewA.Events)-1].Hash)
	}
	if st := f.lookup(newsletter, []optin.Address{a})[0]; st.Consent == nil || st.Consent.Status != optin.StatusGranted ||
		!sameReasons(st.Suppressions, []optin.SuppressionReason{optin.SuppressComplaint}) {
		t.Errorf("Lookup after reopening: %+v", st)
	}
	f.wantVerified(2, 6)
}

// testClosed: every method of a closed store returns an error; none
// panics.
func testClosed(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("closed@example.com")
	f.applied(f.grant(a, newsletter, optin.ConsentChange{}))
	if err := f.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, ctx := f.store, f.ctx
	calls := map[string]func() error{
		"Ping": func() error { return s.Ping(ctx) },
		"Apply": func() error {
			_, err := s.Apply(ctx, []optin.Change{f.grant(a, orders, optin.ConsentChange{})})
			return err
		},
		"Subject": func() error {
			_, err := s.Subject(ctx, a, 10)
			return err
		},
		"Lookup": func() error {
			_, err := s.Lookup(ctx, optin.LookupQuery{Purpose: newsletter, Addresses: []optin.Address{a}, Message: "mid:<closed@storetest>"})
			return err
		},
		"Events":       func() error { _, err := s.Events(ctx, optin.EventQuery{}); return err },
		"Suppressions": func() error { _, err := s.Suppressions(ctx, "", 0); return err },
		"Verify":       func() error { _, err := s.Verify(ctx); return err },
	}
	for name, call := range calls {
		noPanic(t, name+" after Close", func() {
			if err := call(); err == nil {
				t.Errorf("%s after Close: no error", name)
			}
		})
	}
	noPanic(t, "a second Close", func() { s.Close() })
}
