package optin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SourceMoved is the source of the withdrawals Move records on the old
// address.
const SourceMoved = "moved"

// MoveResult tells what Move recorded.
type MoveResult struct {
	// Moved is false when nothing was recorded: nothing is stored about
	// the old address, or it was moved to the new one already.
	Moved bool
	// Consents counts the records copied to the new address (a record the
	// new address holds as new or newer stays as it is, uncounted).
	Consents int
	// Suppressions counts the suppressions added to the new address.
	Suppressions int
	// Withdrawn counts the granted or pending records withdrawn on the old
	// address.
	Withdrawn int
}

// moveDetails is the details of the subject.updated events of a move:
// new_email on the old address, old_email on the new one.
type moveDetails struct {
	NewEmail string `json:"new_email,omitempty"`
	OldEmail string `json:"old_email,omitempty"`
}

// moveScan bounds the pages of subject.updated events Move reads to learn
// whether the old address was moved already.
const moveScan = 20

// Move records that the subject at from now uses the address to (an email
// change reported by Mailchimp or a CRM). On to it records a copy of each
// of from's consent records (status, basis, source, grant and expiry
// times and evidence kept; the evidence gains moved_from, the id of the
// event that recorded the original on from, never the address) and each
// of from's suppressions but hard_bounce (a bounce is about the old
// mailbox, not the person), then a subject.updated event with old_email.
// On from it records a subject.updated event with new_email and withdraws
// every granted or pending record (source "moved"), so that the old
// consent sends no more mail to the old address.
//
// A copied record keeps its UpdatedAt, so a record to holds that is as new
// or newer stands (newest wins). The withdrawals are dated at (now when
// zero). Move is idempotent: when from's log already says it moved to to
// and from holds no granted or pending record, it records nothing. The
// changes are applied in one batch, to's first and from's last, so that a
// move cut short by a store failure is finished by a repeat. Errors wrap
// ErrBadInput (from == to, an address missing) or the store's errors.
func (l *Ledger) Move(ctx context.Context, from, to Address, actor string, at time.Time) (MoveResult, error) {
	switch {
	case from.IsZero() || to.IsZero():
		return MoveResult{}, fmt.Errorf("%w: move without an address", ErrBadInput)
	case from == to:
		return MoveResult{}, fmt.Errorf("%w: move to the same address", ErrBadInput)
	}
	old, err := l.store.Subject(ctx, from, 0)
	if errors.Is(err, ErrNotFound) {
		return MoveResult{}, nil // nothing to move
	} else if err != nil {
		return MoveResult{}, err
	}
	moved, err := l.movedTo(ctx, from, to)
	if err != nil {
		return MoveResult{}, err
	}
	if moved && !holdsActive(old) {
		return MoveResult{}, nil
	}
	now := l.now().UTC()
	if at.IsZero() {
		at = now
	}
	changes, err := l.moveChanges(old, to, actor, at, now)
	if err != nil {
		return MoveResult{}, err
	}
	results, err := l.store.Apply(ctx, changes)
	if err != nil {
		return MoveResult{}, err
	}
	res := MoveResult{Moved: true}
	for i, r := range results {
		if !r.Applied {
			continue
		}
		switch ch := changes[i]; {
		case ch.Subject == to && ch.Consent != nil:
			res.Consents++
		case ch.Subject == to && ch.AddSuppression != "":
			res.Suppressions++
		case ch.Subject == from && ch.Consent != nil:
			res.Withdrawn++
		}
	}
	return res, nil
}

// moveChanges builds the batch of Move: to's copies and event, then from's
// event and withdrawals.
func (l *Ledger) moveChanges(old *SubjectView, to Address, actor string, at, now time.Time) ([]Change, error) {
	from := old.Address
	var changes []Change
	for _, c := range old.Consents {
		ev := Evidence{}
		if c.Evidence != nil {
			ev = *c.Evidence
		}
		extra := make(map[string]string, len(ev.Extra)+1)
		for k, v := range ev.Extra {
			extra[k] = v
		}
		extra["moved_from"] = c.EventID
		ev.Extra = extra
		copied := &Consent{Subject: to, Purpose: c.Purpose, Status: c.Status, Basis: c.Basis, Source: c.Source,
			GrantedAt: c.GrantedAt, UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt, Gaps: c.Gaps,
			NoticedAt: c.NoticedAt} // an expiry announced at the old address is not announced again
		details := ConsentDetails{Status: c.Status, Basis: c.Basis, Source: c.Source, Evidence: &ev, ExpiresAt: c.ExpiresAt}
		changes = append(changes, Change{Subject: to, Consent: copied, Event: Event{
			Time: now, Type: eventFor(c.Status), Subject: to, Purpose: c.Purpose, Actor: actor, Details: details.Marshal()}})
	}
	for _, s := range old.Suppressions {
		if s.Reason == SuppressHardBounce {
			continue
		}
		changes = append(changes, Change{Subject: to, AddSuppression: s.Reason,
			Event: l.suppressionEvent(to, EventSuppressionAdded, s.Reason, actor)})
	}
	changes = append(changes,
		subjectUpdated(to, moveDetails{OldEmail: from.String()}, actor, now),
		subjectUpdated(from, moveDetails{NewEmail: to.String()}, actor, now))
	for _, c := range old.Consents {
		if c.Status != StatusGranted && c.Status != StatusPending {
			continue
		}
		ch, err := l.WithdrawChange(from, c.Purpose, ConsentChange{Basis: c.Basis, Source: SourceMoved, Actor: actor, At: at})
		if errors.Is(err, ErrUnknownPurpose) {
			// A purpose no longer configured: withdraw it all the same, as
			// the ledger would have, so the old consent cannot come back.
			ch = Change{Subject: from, Consent: &Consent{Subject: from, Purpose: c.Purpose, Status: StatusWithdrawn,
				Basis: c.Basis, Source: SourceMoved, UpdatedAt: at.UTC()}, Event: Event{Time: now, Type: EventConsentWithdrawn,
				Subject: from, Purpose: c.Purpose, Actor: actor,
				Details: ConsentDetails{Status: StatusWithdrawn, Basis: c.Basis, Source: SourceMoved}.Marshal()}}
		} else if err != nil {
			return nil, err
		}
		changes = append(changes, ch)
	}
	return changes, nil
}

func subjectUpdated(a Address, d moveDetails, actor string, now time.Time) Change {
	b, _ := json.Marshal(d)
	return Change{Subject: a, Event: Event{Time: now, Type: EventSubjectUpdated, Subject: a, Actor: actor, Details: b}}
}

// movedTo reports whether from's log holds a subject.updated event naming
// to as its new address.
func (l *Ledger) movedTo(ctx context.Context, from, to Address) (bool, error) {
	q := EventQuery{Subject: from, Type: EventSubjectUpdated, Limit: MaxPageSize}
	for range moveScan {
		page, err := l.store.Events(ctx, q)
		if err != nil {
			return false, err
		}
		for _, e := range page.Events {
			var d moveDetails
			if json.Unmarshal(e.Details, &d) == nil && d.NewEmail == to.String() {
				return true, nil
			}
		}
		if page.NextCursor == "" {
			return false, nil
		}
		q.Cursor = page.NextCursor
	}
	return false, nil
}

// holdsActive reports whether v has a granted or pending record.
func holdsActive(v *SubjectView) bool {
	for _, c := range v.Consents {
		if c.Status == StatusGranted || c.Status == StatusPending {
			return true
		}
	}
	return false
}
