package optin

import (
	"errors"
	"testing"
	"time"
)

// TestNotice: a notice opens for its subject and event under the
// keyring that sealed it, not for another event or subject, and no
// longer once its generation is retired.
func TestNotice(t *testing.T) {
	now := time.Now()
	k := NewKeyring(now)
	a, _ := ParseAddress("Jan@Example.com")
	sid := k.SubjectID(a)
	n := k.SealNotice(sid, "ev1", a)
	if got, err := k.OpenNotice(sid, "ev1", n); err != nil || got != a {
		t.Fatalf("OpenNotice = %v, %v; want %v", got, err, a)
	}
	if _, err := k.OpenNotice(sid, "ev2", n); !errors.Is(err, ErrCorrupt) {
		t.Errorf("another event's notice: %v; want ErrCorrupt", err)
	}
	if _, err := k.OpenNotice("other", "ev1", n); !errors.Is(err, ErrCorrupt) {
		t.Errorf("another subject's notice: %v; want ErrCorrupt", err)
	}
	rotated := k.Rotated(now)
	if got, err := rotated.OpenNotice(sid, "ev1", n); err != nil || got != a {
		t.Errorf("after a rotation: %v, %v; the old generation still opens it", got, err)
	}
	retired, err := rotated.Retired(k.Newest())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := retired.OpenNotice(sid, "ev1", n); !errors.Is(err, ErrKeyGeneration) {
		t.Errorf("after retiring its generation: %v; want ErrKeyGeneration", err)
	}
	e := Event{ID: "ev1", Erased: true}
	if err := StaticKeys(retired).FillNotice(&e, sid, n); err != nil || !e.Subject.IsZero() {
		t.Errorf("FillNotice under a retired generation: %v, %v; want no address, no error", e.Subject, err)
	}
	if err := StaticKeys(k).FillNotice(&e, sid, n); err != nil || e.Subject != a {
		t.Errorf("FillNotice: %v, %v", e.Subject, err)
	}
}

// TestApplyErased: the rules SubjectState.Apply keeps for erasure, one
// row each.
func TestApplyErased(t *testing.T) {
	now := time.Now().UTC()
	a, _ := ParseAddress("x@example.com")
	grant := func(s Status) Change {
		return Change{Subject: a, Consent: &Consent{Purpose: "news", Status: s, UpdatedAt: now.Add(time.Minute)},
			Event: Event{Type: EventConsentGranted}}
	}
	erased := func() *SubjectState {
		st := NewSubjectState("sid", a)
		if _, _, err := st.Apply(Change{Subject: a, Erasure: &Erasure{Op: EraseNow}, Event: Event{Type: EventSubjectErased}}, now); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tt := range []struct {
		name    string
		ch      Change
		refused bool // ErrErased
		applied bool
		keyed   bool // the subject has a key afterwards
	}{
		// A grant and a pending record are refused.
		{"grant", grant(StatusGranted), true, false, false},
		{"pending", grant(StatusPending), true, false, false},
		// A withdrawal and another suppression change nothing.
		{"withdrawal", grant(StatusWithdrawn), false, false, false},
		{"suppression", Change{Subject: a, AddSuppression: SuppressComplaint, Event: Event{Type: EventSuppressionAdded}}, false, false, false},
		// A receipt is recorded, and no key kept.
		{"receipt", Receipt{Subject: a, Purpose: "news", Time: now, Decision: Decision{Reason: SuppressedReason(SuppressErased)}}.Change(), false, true, false},
		// Erasing again, scheduling, cancelling: nothing to do.
		{"erase again", Change{Subject: a, Erasure: &Erasure{Op: EraseNow}, Event: Event{Type: EventSubjectErased}}, false, false, false},
		{"schedule", Change{Subject: a, Erasure: &Erasure{Op: EraseSchedule, At: now.Add(time.Hour)}, Event: Event{Type: EventErasureScheduled}}, false, false, false},
		// Lifting the erased suppression: the person is back, a fresh key.
		{"return", Change{Subject: a, RemoveSuppression: SuppressErased, Event: Event{Type: EventSuppressionRemoved}}, false, true, true},
	} {
		st := erased()
		_, res, err := st.Apply(tt.ch, now)
		if errors.Is(err, ErrErased) != tt.refused || !tt.refused && err != nil {
			t.Errorf("%s: error %v, want refused %v", tt.name, err, tt.refused)
		}
		if res.Applied != tt.applied || (st.Key != nil) != tt.keyed || res.Erased == tt.keyed {
			t.Errorf("%s: applied %v, key %v, erased %v; want %v, %v, %v", tt.name, res.Applied, st.Key != nil, res.Erased, tt.applied, tt.keyed, !tt.keyed)
		}
	}
}
