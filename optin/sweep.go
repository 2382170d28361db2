package optin

import (
	"context"
	"encoding/json"
	"time"
)

// SourceRetention is the source of the records the retention sweep marks
// expired, and ActorRetention the actor of its events.
const (
	SourceRetention = "retention"
	ActorRetention  = "retention"
)

// Why a consent.expired event's record ended (its details' "reason").
const (
	// ExpiredRetention: a granted consent reached its expires_at (the
	// purpose's retention after it was granted or last renewed).
	ExpiredRetention = "retention"
	// ExpiredUnconfirmed: a double opt-in stayed pending for longer than
	// policy.pending_expiry.
	ExpiredUnconfirmed = "unconfirmed"
)

// SweepOptions are the policy's retention settings for Ledger.Sweep.
type SweepOptions struct {
	// Notice is how long before a consent expires that its
	// consent.expiring event is recorded (policy.retention_notice); 0
	// records none.
	Notice time.Duration
	// PendingExpiry is how long a record may stay pending before it is
	// marked expired (policy.pending_expiry); 0 leaves pending records
	// alone.
	PendingExpiry time.Duration
	// PageSize is how many subjects are read, and their changes written
	// in one Store.Apply, at a time; 0 is MaxPageSize.
	PageSize int
}

// SweepReport counts, by purpose, what one sweep recorded. A change that
// another sweeper or a renewal got to first is not counted, so that the
// counts of several sweepers on one store add up to what was recorded.
type SweepReport struct {
	// Subjects is how many subjects were read.
	Subjects int
	// Noticed counts the consent.expiring events.
	Noticed map[string]int
	// Expired counts granted consents marked expired (ExpiredRetention).
	Expired map[string]int
	// Unconfirmed counts pending records marked expired
	// (ExpiredUnconfirmed).
	Unconfirmed map[string]int
}

// NoticeDetails is the details object of a consent.expiring event.
type NoticeDetails struct {
	Purpose   string    `json:"purpose"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Sweep carries out the retention of consents as of now: it
// pages through every subject and, per page in one Store.Apply,
//
//   - records consent.expiring for a granted consent whose expires_at is
//     within opts.Notice and whose expiry was not announced yet (once per
//     term: a renewal clears Consent.NoticedAt);
//   - marks expired a granted consent whose expires_at has passed, dated
//     at its expires_at, so that a renewal made after that still wins by
//     the newest-wins rule;
//   - marks expired a record pending for longer than opts.PendingExpiry,
//     dated at the end of that time.
//
// Each change names the record it was made from (Change.Notice,
// Change.Replaces), so a renewal written between the read and the write
// stands, and several sweepers on one store record each notice and
// expiry once. Consents without an expiry (a purpose without retention)
// never expire; nothing is deleted, so the record and its history keep
// proving what was allowed when. On error the report counts what was
// recorded before it; a later sweep goes on from the current state.
func (l *Ledger) Sweep(ctx context.Context, now time.Time, opts SweepOptions) (SweepReport, error) {
	rep := SweepReport{Noticed: map[string]int{}, Expired: map[string]int{}, Unconfirmed: map[string]int{}}
	now = now.UTC()
	cursor := ""
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		page, err := l.store.Subjects(ctx, cursor, PageSize(opts.PageSize))
		if err != nil {
			return rep, err
		}
		rep.Subjects += len(page.Subjects)
		var changes []Change
		var counts []map[string]int
		for i := range page.Subjects {
			for _, d := range sweepDue(&page.Subjects[i], now, opts) {
				changes = append(changes, d.change)
				counts = append(counts, map[string]map[string]int{
					noticed: rep.Noticed, ExpiredRetention: rep.Expired, ExpiredUnconfirmed: rep.Unconfirmed,
				}[d.what])
			}
		}
		if len(changes) > 0 {
			rs, err := l.store.Apply(ctx, changes)
			for i, r := range rs {
				if r.Applied {
					counts[i][changes[i].Event.Purpose]++
				}
			}
			if err != nil {
				return rep, err
			}
		}
		if page.NextCursor == "" {
			return rep, nil
		}
		cursor = page.NextCursor
	}
}

// SweepChanges are the changes Sweep makes to one subject's records as
// of now: a pure function of the records and the options.
func SweepChanges(v *SubjectView, now time.Time, opts SweepOptions) []Change {
	var out []Change
	for _, d := range sweepDue(v, now, opts) {
		out = append(out, d.change)
	}
	return out
}

// noticed is what a due change is when it announces an expiry.
const noticed = "noticed"

// due is a change Sweep makes and what it is: noticed, ExpiredRetention
// or ExpiredUnconfirmed.
type due struct {
	change Change
	what   string
}

func sweepDue(v *SubjectView, now time.Time, opts SweepOptions) []due {
	var out []due
	for _, c := range v.Consents {
		switch {
		case c.Status == StatusGranted && !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt):
			out = append(out, due{expiry(v.Address, c, c.ExpiresAt, ExpiredRetention, now), ExpiredRetention})
		case c.Status == StatusGranted && !c.ExpiresAt.IsZero() && opts.Notice > 0 && c.NoticedAt.IsZero() &&
			!now.Before(c.ExpiresAt.Add(-opts.Notice)):
			out = append(out, due{notice(v.Address, c, now), noticed})
		case c.Status == StatusPending && opts.PendingExpiry > 0 && !now.Before(c.UpdatedAt.Add(opts.PendingExpiry)):
			out = append(out, due{expiry(v.Address, c, c.UpdatedAt.Add(opts.PendingExpiry), ExpiredUnconfirmed, now), ExpiredUnconfirmed})
		}
	}
	return out
}

// expiry marks c expired as of at, recorded now, for why.
func expiry(a Address, c Consent, at time.Time, why string, now time.Time) Change {
	rec := &Consent{Subject: a, Purpose: c.Purpose, Status: StatusExpired, Basis: c.Basis, Source: SourceRetention,
		GrantedAt: c.GrantedAt, UpdatedAt: at, ExpiresAt: c.ExpiresAt}
	if why == ExpiredUnconfirmed {
		rec.ExpiresAt = time.Time{} // a pending record never had one
	}
	details := ConsentDetails{Status: StatusExpired, Basis: c.Basis, Source: SourceRetention, ExpiresAt: at, Reason: why}
	return Change{Subject: a, Consent: rec, Replaces: c.EventID, Event: Event{
		Time: now, Type: EventConsentExpired, Subject: a, Purpose: c.Purpose, Actor: ActorRetention,
		Details: details.Marshal(),
	}}
}

// notice announces c's expiry, recorded now.
func notice(a Address, c Consent, now time.Time) Change {
	details, _ := json.Marshal(NoticeDetails{Purpose: c.Purpose, ExpiresAt: c.ExpiresAt.UTC()})
	return Change{Subject: a, Notice: c.EventID, Event: Event{
		Time: now, Type: EventConsentExpiring, Subject: a, Purpose: c.Purpose, Actor: ActorRetention, Details: details,
	}}
}
