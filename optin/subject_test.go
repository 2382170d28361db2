package optin

import (
	"bytes"
	"testing"
	"time"
)

func mustAddr(t *testing.T, s string) Address {
	t.Helper()
	a, err := ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func testLedger(t *testing.T, now time.Time) *Ledger {
	t.Helper()
	l, err := NewLedger(LedgerOptions{
		Store: nopStore{},
		Purposes: Purposes{
			"newsletter": {Name: "newsletter", Basis: BasisConsent, Category: CategoryMarketing, Retention: 730 * 24 * time.Hour},
			"doi":        {Name: "doi", Basis: BasisConsent, Category: CategoryMarketing, DoubleOptIn: true},
		},
		PolicyVersion: "2026-01",
		Now:           func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// nopStore satisfies Store for building changes; nothing here calls it.
type nopStore struct{ Store }

func TestApplyNewestWinsAndChains(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := testLedger(t, now)
	a := mustAddr(t, "Jan@Example.com")
	st := NewSubjectState(SubjectID(NewKey(), a), a)

	grant, err := l.GrantChange(a, "newsletter", ConsentChange{At: now.Add(-time.Hour), Evidence: Evidence{IP: "192.0.2.1"}})
	if err != nil {
		t.Fatal(err)
	}
	s1, r1, err := st.Apply(grant, now)
	if err != nil || s1 == nil || !r1.Applied {
		t.Fatalf("grant not applied: %v %v", r1, err)
	}
	if s1.Prev != "" || s1.Hash == "" || !s1.Intact("") {
		t.Errorf("first event chain: prev %q hash %q", s1.Prev, s1.Hash)
	}
	c := st.Consents["newsletter"]
	if c.Status != StatusGranted || !c.ExpiresAt.Equal(now.Add(-time.Hour).Add(730*24*time.Hour)) || c.EventID != r1.Event.ID {
		t.Errorf("record %+v", c)
	}

	withdraw, _ := l.WithdrawChange(a, "newsletter", ConsentChange{At: now})
	s2, r2, _ := st.Apply(withdraw, now)
	if !r2.Applied || s2.Prev != s1.Hash || !s2.Intact(s1.Hash) {
		t.Fatalf("withdrawal not chained after the grant")
	}

	// A late webhook with the old grant must not bring it back.
	late, _ := l.GrantChange(a, "newsletter", ConsentChange{At: now.Add(-30 * time.Minute)})
	if s, r, _ := st.Apply(late, now); s != nil || r.Applied || r.Consent.Status != StatusWithdrawn {
		t.Errorf("older grant applied over a newer withdrawal: %+v", r)
	}
	// A repeat of the withdrawal changes nothing.
	if s, _, _ := st.Apply(withdraw, now); s != nil {
		t.Error("repeated change applied twice")
	}
	// A grant at the very time of the withdrawal does not undo it.
	same, _ := l.GrantChange(a, "newsletter", ConsentChange{At: now})
	if s, _, _ := st.Apply(same, now); s != nil {
		t.Error("a grant as late as the withdrawal replaced it")
	}

	// The sealed event opens with the subject's key, and not without.
	e, err := Open(st.Key, *s1)
	if err != nil || e.Subject != a || EvidenceOf(e).IP != "192.0.2.1" {
		t.Fatalf("open: %+v %v", e, err)
	}
	if bytes.Contains(s1.Sealed, []byte("example.com")) {
		t.Error("address readable in the sealed event")
	}
	if e, _ := Open(nil, *s1); !e.Erased || !e.Subject.IsZero() || e.Details != nil {
		t.Errorf("opened without a key: %+v", e)
	}
	tampered := *s1
	tampered.Actor = "someone else"
	if tampered.Intact("") {
		t.Error("tampered event still intact")
	}
}

// TestWithdrawalWinsATie: senders that date changes to the second send a
// grant and its withdrawal within one; the withdrawal is applied, once.
func TestWithdrawalWinsATie(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := testLedger(t, now)
	a := mustAddr(t, "jan@example.com")
	st := NewSubjectState(SubjectID(NewKey(), a), a)
	at := now.Add(-time.Minute)
	grant, _ := l.GrantChange(a, "newsletter", ConsentChange{At: at})
	withdraw, _ := l.WithdrawChange(a, "newsletter", ConsentChange{At: at})
	if _, r, _ := st.Apply(grant, now); !r.Applied {
		t.Fatal("grant not applied")
	}
	if _, r, _ := st.Apply(withdraw, now); !r.Applied || st.Consents["newsletter"].Status != StatusWithdrawn {
		t.Fatalf("a withdrawal in the grant's second was ignored: %+v", r)
	}
	if s, _, _ := st.Apply(withdraw, now); s != nil {
		t.Error("the repeated withdrawal was applied again")
	}
}

func TestDoubleOptInIsPendingUntilConfirmed(t *testing.T) {
	now := time.Now()
	l := testLedger(t, now)
	a := mustAddr(t, "a@example.com")
	ch, _ := l.GrantChange(a, "doi", ConsentChange{Source: SourceForm})
	if ch.Consent.Status != StatusPending || ch.Event.Type != EventConsentPending {
		t.Errorf("double opt-in grant: %s %s", ch.Consent.Status, ch.Event.Type)
	}
	ch, _ = l.GrantChange(a, "doi", ConsentChange{Source: SourceDoubleOptIn})
	if ch.Consent.Status != StatusGranted {
		t.Errorf("confirmation: %s", ch.Consent.Status)
	}
	if _, err := l.GrantChange(a, "nope", ConsentChange{}); err == nil {
		t.Error("unknown purpose accepted")
	}
	if _, err := l.GrantChange(a, "doi", ConsentChange{At: now.Add(time.Hour)}); err == nil {
		t.Error("future change accepted")
	}
}

func TestSuppressionChangesAreIdempotent(t *testing.T) {
	a := mustAddr(t, "a@example.com")
	st := NewSubjectState("sid", a)
	add := Change{Subject: a, AddSuppression: SuppressHardBounce, Event: Event{Type: EventSuppressionAdded}}
	if s, _, _ := st.Apply(add, time.Now()); s == nil {
		t.Fatal("first add ignored")
	}
	if s, _, _ := st.Apply(add, time.Now()); s != nil {
		t.Error("second add recorded")
	}
	rm := Change{Subject: a, RemoveSuppression: SuppressHardBounce, Event: Event{Type: EventSuppressionRemoved}}
	if s, _, _ := st.Apply(rm, time.Now()); s == nil || len(st.Suppressions) != 0 {
		t.Error("remove ignored")
	}
	if s, _, _ := st.Apply(rm, time.Now()); s != nil {
		t.Error("second remove recorded")
	}
}

func TestConsentCodecRoundTrip(t *testing.T) {
	a := mustAddr(t, "a@example.com")
	now := time.Now().UTC()
	c := Consent{Subject: a, Purpose: "newsletter", Status: StatusGranted, Basis: BasisConsent, Source: "form",
		GrantedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour), EventID: NewEventID(now)}
	got, err := DecodeConsent(a, "newsletter", EncodeConsent(c))
	if err != nil || !got.UpdatedAt.Equal(c.UpdatedAt) || got.EventID != c.EventID || got.Status != c.Status {
		t.Errorf("round trip: %+v %v", got, err)
	}
	if _, err := DecodeConsent(a, "x", "granted|consent"); err == nil {
		t.Error("short record decoded")
	}
}

func TestEventWithoutTimeGetsNowAndATimeOrderedID(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := mustAddr(t, "a@example.com")
	st := NewSubjectState("sid", a)
	_, r, err := st.Apply(Change{Subject: a, Event: Event{Type: EventMessageRelayed, Details: []byte(`{"message_id":"<m@x>"}`)}}, now)
	if err != nil || !r.Event.Time.Equal(now) {
		t.Fatalf("event time %s, %v; want now", r.Event.Time, err)
	}
	// The first 9 base32 characters hold only the millisecond time.
	if got, want := r.Event.ID[:9], NewEventID(now)[:9]; got != want {
		t.Errorf("event id %s does not start with the time of now (%s)", r.Event.ID, want)
	}
}
