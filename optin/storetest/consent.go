package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"optinproxy/optin"
)

// testGrantAndWithdraw records a consent of each kind of purpose and
// reads the subject back: the records as the ledger built them, evidence
// from the recording events, and the history.
func testGrantAndWithdraw(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("jan@example.com")
	at := f.ago(3 * time.Hour)
	evidence := optin.Evidence{IP: "192.0.2.1", UserAgent: "Mozilla/5.0", Text: "Send me the newsletter",
		Extra: map[string]string{"campaign": "spring"}}

	grant := f.grant(a, newsletter, optin.ConsentChange{Source: optin.SourceForm, Evidence: evidence, At: at, Actor: "crm"})
	r := f.applied(grant)
	want := *grant.Consent
	want.EventID = r.Event.ID
	switch {
	case r.Event.ID == "" || r.Event.Hash == "":
		t.Errorf("applied event without id or hash: %s", describe(r.Event))
	case r.Event.Prev != "":
		t.Errorf("a subject's first event has Prev %q", r.Event.Prev)
	case r.Event.Subject != a || r.Event.Type != optin.EventConsentGranted || r.Event.Actor != "crm":
		t.Errorf("applied event %s", describe(r.Event))
	case !r.Event.Time.Equal(grant.Event.Time):
		t.Errorf("event time %s, the change's %s", r.Event.Time, grant.Event.Time)
	}
	sameRecord(t, "Result.Consent of the grant", r.Consent, &want)
	if !want.ExpiresAt.Equal(at.Add(retention)) {
		t.Fatalf("ledger: expiry %s", want.ExpiresAt)
	}

	v := f.subject(a, 10)
	if len(v.Consents) != 1 {
		t.Fatalf("after one grant: %d consents", len(v.Consents))
	}
	sameRecord(t, "stored grant", &v.Consents[0], &want)
	if ev := v.Consents[0].Evidence; ev == nil || ev.IP != evidence.IP || ev.UserAgent != evidence.UserAgent ||
		ev.Text != evidence.Text || ev.Extra["campaign"] != "spring" || ev.PolicyVersion != policy || !ev.Time.Equal(at) {
		t.Errorf("evidence of the grant: %+v, want %+v with policy %s at %s", ev, evidence, policy, at)
	}
	if len(v.Suppressions) != 0 || len(v.Events) != 1 {
		t.Errorf("after one grant: suppressions %+v, %d events", v.Suppressions, len(v.Events))
	} else {
		sameEvent(t, "the grant's event", v.Events[0], r.Event)
	}

	// Double opt-in: pending until confirmed; legitimate interests: an
	// objection without a grant; transactional: a contract.
	rs := []optin.Result{r}
	wantRecords := map[string]*optin.Consent{}
	for _, ch := range []optin.Change{
		f.grant(a, doi, optin.ConsentChange{Source: optin.SourceForm, At: f.ago(150 * time.Minute)}),
		f.grant(a, doi, optin.ConsentChange{Source: optin.SourceDoubleOptIn, At: f.ago(140 * time.Minute),
			Evidence: optin.Evidence{IP: "198.51.100.7"}}),
		f.withdraw(a, offers, optin.ConsentChange{Source: optin.SourceUnsubscribe, At: f.ago(2 * time.Hour)}),
		f.grant(a, orders, optin.ConsentChange{Source: optin.SourceCRM, At: f.ago(90 * time.Minute)}),
		f.withdraw(a, newsletter, optin.ConsentChange{Source: optin.SourcePortal, At: f.ago(time.Hour), Actor: "subject"}),
	} {
		r := f.applied(ch)
		rec := *ch.Consent
		rec.EventID = r.Event.ID
		if prev := wantRecords[rec.Purpose]; rec.GrantedAt.IsZero() && prev != nil {
			rec.GrantedAt = prev.GrantedAt // a withdrawal keeps when it was granted
		} else if rec.GrantedAt.IsZero() && rec.Purpose == newsletter {
			rec.GrantedAt = want.GrantedAt
		}
		sameRecord(t, "Result.Consent of "+string(ch.Event.Type)+" "+ch.Consent.Purpose, r.Consent, &rec)
		if r.Event.Prev != rs[len(rs)-1].Event.Hash {
			t.Errorf("%s %s: Prev is not the hash of the subject's event before", ch.Event.Type, ch.Consent.Purpose)
		}
		wantRecords[rec.Purpose] = &rec
		rs = append(rs, r)
	}
	if wantRecords[doi].Status != optin.StatusGranted || wantRecords[offers].Basis != optin.BasisLegitimateInterests ||
		wantRecords[orders].Basis != optin.BasisContract {
		t.Fatalf("ledger built unexpected records: %+v", wantRecords)
	}

	v = f.subject(a, 10)
	var purposes []string
	for i := range v.Consents {
		purposes = append(purposes, v.Consents[i].Purpose)
		sameRecord(t, "stored "+v.Consents[i].Purpose, &v.Consents[i], wantRecords[v.Consents[i].Purpose])
	}
	if len(purposes) != 4 || purposes[0] != doi || purposes[1] != newsletter || purposes[2] != offers || purposes[3] != orders {
		t.Errorf("consents %q, want doi, newsletter, offers, orders by name", purposes)
	}
	for _, c := range v.Consents {
		switch c.Purpose {
		case doi:
			if c.Evidence == nil || c.Evidence.IP != "198.51.100.7" || c.Evidence.PolicyVersion != policy {
				t.Errorf("doi evidence %+v, want the confirmation's", c.Evidence)
			}
		case newsletter:
			if c.Evidence == nil || !c.Evidence.Time.Equal(f.ago(time.Hour)) || c.Evidence.IP != "" {
				t.Errorf("newsletter evidence %+v, want the withdrawal's", c.Evidence)
			}
		}
	}
	sameEvents(t, "history", v.Events, resultEvents(rs))
	checkChain(t, v.Events)
}

func testSubjectNotFound(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("nobody@example.com")
	if _, err := f.store.Subject(f.ctx, a, 10); !errors.Is(err, optin.ErrNotFound) {
		t.Fatalf("Subject of an unknown address: %v, want ErrNotFound", err)
	}
	// A change that changes nothing stores nothing.
	if r := f.applyOne(f.unsuppress(a, optin.SuppressManual)); r.Applied {
		t.Errorf("removing a suppression that is not there was applied: %+v", r)
	}
	if _, err := f.store.Subject(f.ctx, a, 10); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("Subject after an ignored change: %v, want ErrNotFound", err)
	}
	if st := f.lookup(newsletter, []optin.Address{a}); st[0].Consent != nil || len(st[0].Suppressions) != 0 || st[0].Address != a {
		t.Errorf("Lookup of an unknown address: %+v", st[0])
	}
}

// testNormalization: one subject per normalized address; plus-tags are
// other subjects.
func testNormalization(t *testing.T, h Harness) {
	f := openFixture(t, h)
	r := f.applied(f.grant(f.addr("Jan@EXAMPLE.com"), newsletter, optin.ConsentChange{}))
	v := f.subject(f.addr("jan@example.com"), 10)
	if v.Address.String() != "jan@example.com" || len(v.Consents) != 1 || v.Consents[0].EventID != r.Event.ID {
		t.Errorf("Subject(jan@example.com) after a grant to Jan@EXAMPLE.com: %+v", v)
	}
	if _, err := f.store.Subject(f.ctx, f.addr("jan+news@example.com"), 10); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("a plus-tag found the untagged subject: %v", err)
	}
	st := f.lookup(newsletter, []optin.Address{f.addr("JAN@example.COM"), f.addr("jan+news@example.com"), f.addr(" <jan@Example.com> ")})
	if st[0].Consent == nil || st[0].Consent.EventID != r.Event.ID || st[2].Consent == nil || st[1].Consent != nil {
		t.Errorf("Lookup of case variants and a plus-tag: %+v", st)
	}

	// An internationalized domain in Unicode and in punycode.
	f.applied(f.grant(f.addr("anna@BÜCHER.example"), orders, optin.ConsentChange{}))
	if v := f.subject(f.addr("anna@xn--bcher-kva.example"), 10); v.Address.String() != "anna@bücher.example" || len(v.Consents) != 1 {
		t.Errorf("Subject by punycode domain: %+v", v)
	}
}

// testNewestWins: a change older than the stored record, or as old, is
// ignored and answered with the stored record; nothing is logged for it.
func testNewestWins(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("late@example.com")
	withdrawal := f.withdraw(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)})
	w := f.applied(withdrawal)

	for _, tc := range []struct {
		name string
		ch   optin.Change
	}{
		{"an older grant", f.grant(a, newsletter, optin.ConsentChange{At: f.ago(2 * time.Hour), Source: optin.SourceMailchimp})},
		{"a grant as old", f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)})},
		{"the same withdrawal again", withdrawal},
	} {
		r := f.applyOne(tc.ch)
		if r.Applied || r.Event.ID != "" {
			t.Errorf("%s was applied: %s", tc.name, describe(r.Event))
		}
		if r.Consent == nil || r.Consent.Status != optin.StatusWithdrawn || r.Consent.EventID != w.Event.ID {
			t.Errorf("%s: Result.Consent %+v, want the stored withdrawal", tc.name, r.Consent)
		}
	}
	if hist := f.history(a); len(hist) != 1 {
		t.Errorf("ignored changes were logged: %d events", len(hist))
	}

	// Within one batch the second change sees the first.
	rs := f.apply(
		f.grant(a, newsletter, optin.ConsentChange{At: f.ago(30 * time.Minute)}),
		f.withdraw(a, newsletter, optin.ConsentChange{At: f.ago(45 * time.Minute)}),
	)
	if !rs[0].Applied || rs[1].Applied || rs[1].Consent == nil || rs[1].Consent.EventID != rs[0].Event.ID {
		t.Errorf("batch [newer grant, older withdrawal]: %+v", rs)
	}
	v := f.subject(a, 10)
	if len(v.Consents) != 1 || v.Consents[0].Status != optin.StatusGranted || !v.Consents[0].UpdatedAt.Equal(f.ago(30*time.Minute)) {
		t.Errorf("final record %+v, want the newest grant", v.Consents)
	}
	if len(v.Events) != 2 || v.Events[1].Prev != w.Event.Hash {
		t.Errorf("history after the batch: %v", ids(v.Events))
	}
}

// testSuppressions: adding what is there and removing what is not are
// ignored; Subject and Lookup show the current set.
func testSuppressions(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("bounce@example.com")
	add := f.applied(f.suppress(a, optin.SuppressHardBounce))
	if add.Event.Type != optin.EventSuppressionAdded || add.Consent != nil {
		t.Errorf("suppression result %+v", add)
	}
	if r := f.applyOne(f.suppress(a, optin.SuppressHardBounce)); r.Applied {
		t.Errorf("adding a suppression twice was applied")
	}
	r, err := f.ledger.Suppress(f.ctx, a, optin.SuppressComplaint, "webhook:postmark")
	if err != nil || !r.Applied {
		t.Fatalf("Ledger.Suppress: %+v %v", r, err)
	}
	grant := f.applied(f.grant(a, newsletter, optin.ConsentChange{}))

	v := f.subject(a, 10)
	got := map[optin.SuppressionReason]time.Time{}
	for _, s := range v.Suppressions {
		if s.Subject != a {
			t.Errorf("suppression of %s in the view of %s", s.Subject, a)
		}
		got[s.Reason] = s.CreatedAt
	}
	if len(v.Suppressions) != 2 || !got[optin.SuppressHardBounce].Equal(add.Event.Time) || !got[optin.SuppressComplaint].Equal(r.Event.Time) {
		t.Errorf("suppressions %+v, want hard_bounce at %s and complaint at %s", v.Suppressions, add.Event.Time, r.Event.Time)
	}
	st := f.lookup(newsletter, []optin.Address{a})[0]
	if !sameReasons(st.Suppressions, []optin.SuppressionReason{optin.SuppressHardBounce, optin.SuppressComplaint}) ||
		st.Consent == nil || st.Consent.EventID != grant.Event.ID {
		t.Errorf("Lookup: %+v", st)
	}

	if r, err := f.ledger.Unsuppress(f.ctx, a, optin.SuppressHardBounce, "admin"); err != nil || !r.Applied || r.Event.Type != optin.EventSuppressionRemoved {
		t.Errorf("Ledger.Unsuppress: %+v %v", r, err)
	}
	if r := f.applyOne(f.unsuppress(a, optin.SuppressHardBounce)); r.Applied {
		t.Errorf("removing a removed suppression was applied")
	}
	if st := f.lookup(newsletter, []optin.Address{a})[0]; !sameReasons(st.Suppressions, []optin.SuppressionReason{optin.SuppressComplaint}) {
		t.Errorf("Lookup after removing hard_bounce: %v", st.Suppressions)
	}
	v = f.subject(a, 10)
	if len(v.Suppressions) != 1 || v.Suppressions[0].Reason != optin.SuppressComplaint || len(v.Events) != 4 {
		t.Errorf("after removal: suppressions %+v, %d events", v.Suppressions, len(v.Events))
	}
	checkChain(t, v.Events)
}

// testEventOnlyChange: a receipt appends to the subject's receipt chain,
// also of a subject nothing else is stored about; other event-only
// changes to its main chain.
func testEventOnlyChange(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("reader@example.com")
	grant := f.applied(f.grant(a, newsletter, optin.ConsentChange{}))
	ch := f.receipt(a, optin.EventMessageRelayed, "<1@crm.example>")
	r := f.applied(ch)
	if r.Event.Prev != "" || r.Consent != nil || !jsonEqual(r.Event.Details, ch.Event.Details) {
		t.Errorf("receipt result %+v", r)
	}
	v := f.subject(a, 10)
	if len(v.Consents) != 1 || v.Consents[0].EventID != grant.Event.ID {
		t.Errorf("a receipt changed the record: %+v", v.Consents)
	}
	sameEvents(t, "history with a receipt", v.Events, []optin.Event{grant.Event, r.Event})

	b := f.addr("stranger@example.com")
	blocked := f.applied(f.receipt(b, optin.EventMessageBlocked, "<2@crm.example>"))
	v = f.subject(b, 10)
	if len(v.Consents) != 0 || len(v.Suppressions) != 0 {
		t.Errorf("a receipt made records: %+v", v)
	}
	sameEvents(t, "receipt of a new subject", v.Events, []optin.Event{blocked.Event})
	if st := f.lookup(newsletter, []optin.Address{b})[0]; st.Consent != nil || len(st.Suppressions) != 0 {
		t.Errorf("Lookup of a subject with only a receipt: %+v", st)
	}

	// An event without a time gets the store's; an id given is kept.
	id := optin.NewEventID(f.clock.Now())
	r = f.applied(optin.Change{Subject: b, Event: optin.Event{ID: id, Type: optin.EventSubjectUpdated, Actor: "admin"}})
	if r.Event.ID != id || r.Event.Time.IsZero() || r.Event.Subject != b || r.Event.Prev != "" {
		t.Errorf("event without time, with id: %s", describe(r.Event))
	}
	if hist := f.history(b); len(hist) != 2 || hist[1].ID != id || !hist[1].Time.Equal(r.Event.Time) {
		t.Errorf("history: %v", ids(hist))
	}
}

// testBadAddressFailsBatch: a change without a subject fails its batch
// before anything is written.
func testBadAddressFailsBatch(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("valid@example.com")
	_, err := f.store.Apply(f.ctx, []optin.Change{
		f.grant(a, newsletter, optin.ConsentChange{}),
		{Event: optin.Event{Type: optin.EventMessageRelayed}},
	})
	if !errors.Is(err, optin.ErrBadAddress) {
		t.Errorf("Apply with an empty subject: %v, want ErrBadAddress", err)
	}
	if _, err := f.store.Subject(f.ctx, a, 10); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("the valid change of the failed batch was stored: %v", err)
	}
}

func testCanceledContext(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("cancel@example.com")
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	if _, err := f.store.Apply(ctx, []optin.Change{f.grant(a, newsletter, optin.ConsentChange{})}); err == nil {
		t.Error("Apply with a canceled context succeeded")
	}
	if _, err := f.store.Lookup(ctx, optin.LookupQuery{Purpose: newsletter, Addresses: []optin.Address{a}}); err == nil {
		t.Error("Lookup with a canceled context succeeded")
	}
	if _, err := f.store.Subject(f.ctx, a, 10); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("a change with a canceled context was stored: %v", err)
	}
}
