package optin

import (
	"encoding/json"
	"testing"
	"time"
)

func TestSweepChanges(t *testing.T) {
	const day = 24 * time.Hour
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	opts := SweepOptions{Notice: 30 * day, PendingExpiry: 7 * day}
	granted := func(expires time.Time) Consent {
		return Consent{Purpose: "newsletter", Status: StatusGranted, Basis: BasisConsent, Source: SourceForm,
			GrantedAt: expires.Add(-730 * day), UpdatedAt: expires.Add(-730 * day), ExpiresAt: expires, EventID: "g1"}
	}
	noticed := func(c Consent) Consent { c.NoticedAt = now.Add(-day); return c }
	pending := func(at time.Time) Consent {
		return Consent{Purpose: "doi", Status: StatusPending, Basis: BasisConsent, Source: SourceForm, UpdatedAt: at, EventID: "p1"}
	}
	for _, tt := range []struct {
		name string
		c    Consent
		opts SweepOptions
		want EventType // "" for no change
		at   time.Time // the expiry's date (UpdatedAt), for consent.expired
	}{
		// Far from its expiry: nothing.
		{"granted, a year left", granted(now.Add(365 * day)), opts, "", time.Time{}},
		// Within the notice, not announced yet: the notice.
		{"granted, 10 days left", granted(now.Add(10 * day)), opts, EventConsentExpiring, time.Time{}},
		// Exactly the notice ahead counts as within it.
		{"granted, exactly the notice left", granted(now.Add(30 * day)), opts, EventConsentExpiring, time.Time{}},
		// Announced already: once a term.
		{"granted, noticed", noticed(granted(now.Add(10 * day))), opts, "", time.Time{}},
		// No notice configured: none.
		{"granted, notice 0", granted(now.Add(10 * day)), SweepOptions{}, "", time.Time{}},
		// Past its expiry: expired, dated at the expiry, noticed or not.
		{"granted, expired", granted(now.Add(-day)), opts, EventConsentExpired, now.Add(-day)},
		{"granted, noticed, expired", noticed(granted(now.Add(-day))), opts, EventConsentExpired, now.Add(-day)},
		// The expiry instant itself: no longer active, so expired.
		{"granted, expires now", granted(now), opts, EventConsentExpired, now},
		// Without an expiry (a purpose without retention): never.
		{"granted, no expiry", granted(time.Time{}), opts, "", time.Time{}},
		// Pending past the pending expiry: expired at its end.
		{"pending 8 days", pending(now.Add(-8 * day)), opts, EventConsentExpired, now.Add(-day)},
		// Pending within it: nothing.
		{"pending 6 days", pending(now.Add(-6 * day)), opts, "", time.Time{}},
		// Pending expiry 0: pending records are left alone.
		{"pending, expiry 0", pending(now.Add(-80 * day)), SweepOptions{Notice: 30 * day}, "", time.Time{}},
		// Withdrawn and expired records are done with.
		{"withdrawn", Consent{Purpose: "newsletter", Status: StatusWithdrawn, ExpiresAt: now.Add(-day), UpdatedAt: now.Add(-2 * day)}, opts, "", time.Time{}},
		{"expired", Consent{Purpose: "newsletter", Status: StatusExpired, ExpiresAt: now.Add(-day), UpdatedAt: now.Add(-day)}, opts, "", time.Time{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := mustAddr(t, "ana@example.com")
			got := SweepChanges(&SubjectView{Address: a, Consents: []Consent{tt.c}}, now, tt.opts)
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("changes %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d changes, want one %s", len(got), tt.want)
			}
			ch := got[0]
			e := ch.Event
			if e.Type != tt.want || e.Subject != a || e.Purpose != tt.c.Purpose || e.Actor != ActorRetention || !e.Time.Equal(now) || ch.Subject != a {
				t.Errorf("event %+v", e)
			}
			switch tt.want {
			case EventConsentExpiring:
				var d NoticeDetails
				if ch.Notice != tt.c.EventID || ch.Consent != nil || json.Unmarshal(e.Details, &d) != nil || !d.ExpiresAt.Equal(tt.c.ExpiresAt) || d.Purpose != tt.c.Purpose {
					t.Errorf("notice %+v, details %s", ch, e.Details)
				}
			case EventConsentExpired:
				c := ch.Consent
				if c == nil || ch.Replaces != tt.c.EventID || ch.Notice != "" || c.Status != StatusExpired || !c.UpdatedAt.Equal(tt.at) ||
					c.Source != SourceRetention || c.Basis != tt.c.Basis {
					t.Fatalf("expiry %+v, record %+v; want expired at %s replacing %s", ch, c, tt.at, tt.c.EventID)
				}
				var d ConsentDetails
				why := ExpiredRetention
				if tt.c.Status == StatusPending {
					why = ExpiredUnconfirmed
				}
				if json.Unmarshal(e.Details, &d) != nil || d.Status != StatusExpired || d.Reason != why || !d.ExpiresAt.Equal(tt.at) {
					t.Errorf("expiry details %s; want reason %s at %s", e.Details, why, tt.at)
				}
			}
		})
	}
}

// TestApplyNoticeAndReplaces: a notice marks the record it names and
// keeps its event; a sweep's change made from a record that was replaced
// since, or a second notice, changes nothing.
func TestApplyNoticeAndReplaces(t *testing.T) {
	const day = 24 * time.Hour
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	l := testLedger(t, now)
	a := mustAddr(t, "ana@example.com")
	st := NewSubjectState(SubjectID(NewKey(), a), a)
	grant, _ := l.GrantChange(a, "newsletter", ConsentChange{At: now.Add(-720 * day)})
	_, g, err := st.Apply(grant, now)
	if err != nil || !g.Applied {
		t.Fatal(g, err)
	}
	view := &SubjectView{Address: a, Consents: []Consent{st.Consents["newsletter"]}}
	notices := SweepChanges(view, now, SweepOptions{Notice: 30 * day})
	if len(notices) != 1 {
		t.Fatalf("%d changes", len(notices))
	}
	s, r, err := st.Apply(notices[0], now)
	if err != nil || s == nil || !r.Applied || s.Prev != g.Event.Hash {
		t.Fatalf("notice not chained after the grant: %+v %v", r, err)
	}
	c := st.Consents["newsletter"]
	if c.EventID != g.Event.ID || !c.NoticedAt.Equal(now) || c.Status != StatusGranted || r.Consent == nil || !r.Consent.NoticedAt.Equal(now) {
		t.Errorf("record after the notice %+v; want the grant's event, noticed now", c)
	}
	if s, _, _ := st.Apply(notices[0], now.Add(time.Hour)); s != nil {
		t.Error("a second notice of the same term applied")
	}

	// The record moves on to its expiry; a notice or expiry made from the
	// grant no longer fits.
	expiries := SweepChanges(&SubjectView{Address: a, Consents: []Consent{c}}, now.Add(11*day), SweepOptions{})
	renewal, _ := l.GrantChange(a, "newsletter", ConsentChange{At: now})
	_, renewed, _ := st.Apply(renewal, now)
	if !renewed.Applied || !st.Consents["newsletter"].NoticedAt.IsZero() {
		t.Fatalf("renewal: %+v", st.Consents["newsletter"])
	}
	if len(expiries) != 1 {
		t.Fatalf("%d expiries", len(expiries))
	}
	for _, ch := range append(expiries, notices...) {
		if s, r, _ := st.Apply(ch, now.Add(11*day)); s != nil || r.Applied || r.Consent == nil || r.Consent.EventID != renewed.Event.ID {
			t.Errorf("%s made from the replaced grant applied over the renewal: %+v", ch.Event.Type, r)
		}
	}
}
