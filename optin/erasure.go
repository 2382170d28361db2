package optin

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Erasure destroys what can be read about a subject while
// keeping what proves the ledger whole:
//
//   - gone: every consent record, every suppression but erased, the
//     delivery marks, a scheduled erasure, the subject's key and its
//     sealed address;
//   - kept: the subject id (a keyed hash of the address under the ledger
//     key), its two chains (sealed under the destroyed key: they verify,
//     and cannot be read) and the erased suppression, which Lookup finds
//     by the keyed hash, so the address stays blocked and is refused on
//     import and by the webhooks without being stored.
//
// A store carries one out in one atomic write per subject. A copy of the
// store taken before holds the subject key wrapped under the ledger key's
// generation of its time: it reads until that generation is retired
// (rotate-key, then rotate-key --retire N).

// ErasureOp is what an Erasure change does.
type ErasureOp uint8

const (
	// EraseNow carries the erasure out: subject.erased.
	EraseNow ErasureOp = iota + 1
	// EraseSchedule sets (or moves) a later erasure: erasure.scheduled.
	EraseSchedule
	// EraseCancel cancels a scheduled one: erasure.cancelled.
	EraseCancel
)

// Erasure is what Change.Erasure asks of a store.
type Erasure struct {
	Op ErasureOp
	// At is when a scheduled erasure is due (EraseSchedule).
	At time.Time
	// Notify keeps the address for the processors that must hear of
	// the erasure (EraseNow): the outbox item of its subject.erased event
	// holds the address sealed under the ledger key's newest generation
	// (Keyring.SealNotice), OutboxRead fills Event.Subject from it, and
	// it goes when the item is pruned. Without it nothing of the address
	// is kept anywhere.
	Notify bool
	// Due makes EraseNow apply only when an erasure is scheduled at or
	// before the event's time: the sweeper's, which a cancellation since
	// its read must stop.
	Due bool
}

// ActorSweeper is the actor of the erasures the sweeper carries out.
const ActorSweeper = "sweeper:erasure"

// applyErasure applies ch.Erasure. What an erasure left takes none (it
// is ignored): there is nothing more to erase or to schedule.
func (st *SubjectState) applyErasure(ch Change, now time.Time) (*SealedEvent, Result, error) {
	er := ch.Erasure
	if st.Erased() {
		return nil, Result{}, nil
	}
	e := st.event(ch.Event, now)
	switch er.Op {
	case EraseNow:
		if er.Due && (st.ErasureAt.IsZero() || st.ErasureAt.After(e.Time)) {
			return nil, Result{}, nil // cancelled or moved since the sweeper read it
		}
		key := st.Key
		if key == nil {
			// Nothing was stored about the address: its one event is
			// sealed under a key that is kept nowhere.
			key = NewKey()
		}
		sealed, res, err := st.seal(key, e)
		if err != nil {
			return nil, res, err
		}
		st.Key = nil
		st.Consents = map[string]Consent{}
		st.Suppressions = map[SuppressionReason]time.Time{SuppressErased: e.Time}
		st.ErasureAt = time.Time{}
		return sealed, res, nil
	case EraseSchedule:
		if er.At.IsZero() {
			return nil, Result{}, fmt.Errorf("%w: a scheduled erasure without a time", ErrBadInput)
		}
		at := er.At.UTC()
		if st.ErasureAt.Equal(at) {
			return nil, Result{}, nil
		}
		if st.Key == nil {
			st.Key = NewKey()
		}
		sealed, res, err := st.seal(st.Key, e)
		if err == nil {
			st.ErasureAt = at
		}
		return sealed, res, err
	case EraseCancel:
		if st.ErasureAt.IsZero() {
			return nil, Result{}, nil
		}
		sealed, res, err := st.seal(st.Key, e)
		if err == nil {
			st.ErasureAt = time.Time{}
		}
		return sealed, res, err
	}
	return nil, Result{}, fmt.Errorf("%w: erasure operation %d", ErrBadInput, er.Op)
}

// ErasureRequest is an erasure as a caller asks for it.
type ErasureRequest struct {
	// At is when: zero or not after now carries it out before Erase
	// returns; a later time schedules it for the sweeper (EraseDue),
	// cancellable until then.
	At time.Time
	// Actor is who asked: an API token's name, "subject" via the
	// portal, ...
	Actor string
	// Notify keeps the address for the outbound targets (see
	// Erasure.Notify); callers set it when any is configured.
	Notify bool
}

// ErasureResult tells what Erase and CancelErasure did.
type ErasureResult struct {
	// Erased is true once the subject is erased (by this call, or
	// before it).
	Erased bool
	// At is when a scheduled erasure is due; zero when none is.
	At time.Time
	// Applied is false when the call recorded nothing: the subject was
	// erased already, or the erasure was scheduled for that time already.
	Applied bool
	// Event is what was recorded, when Applied.
	Event Event
}

// erasureDetails is the details object of erasure.scheduled.
type erasureDetails struct {
	At time.Time `json:"at"`
}

// Erase erases a now, or schedules its erasure (see ErasureRequest.At);
// a second call for a scheduled one moves it. Erasing an address nothing
// is stored about still records its erased suppression, so that the
// address is not mailed or imported later. Errors wrap ErrBadAddress or
// the store's errors.
func (l *Ledger) Erase(ctx context.Context, a Address, req ErasureRequest) (ErasureResult, error) {
	ch, err := l.EraseChange(a, req)
	if err != nil {
		return ErasureResult{}, err
	}
	return l.applyErasure(ctx, ch)
}

// EraseChange builds the Change Erase applies, for a caller that applies
// it in a batch of its own (the benchmarks' seeding): an erasure now, or
// one scheduled when req.At is after the ledger's clock. An error wraps
// ErrBadAddress.
func (l *Ledger) EraseChange(a Address, req ErasureRequest) (Change, error) {
	if a.IsZero() {
		return Change{}, fmt.Errorf("%w: no address", ErrBadAddress)
	}
	now := l.now().UTC()
	if req.At.After(now) {
		details, _ := json.Marshal(erasureDetails{At: req.At.UTC()})
		return Change{Subject: a, Erasure: &Erasure{Op: EraseSchedule, At: req.At.UTC()},
			Event: Event{Time: now, Type: EventErasureScheduled, Subject: a, Actor: req.Actor, Details: details}}, nil
	}
	return Change{Subject: a, Erasure: &Erasure{Op: EraseNow, Notify: req.Notify},
		Event: Event{Time: now, Type: EventSubjectErased, Subject: a, Actor: req.Actor}}, nil
}

// CancelErasure cancels a's scheduled erasure. An error wrapping
// ErrNoErasure (and ErrNotFound) when none is scheduled, an erased
// subject included.
func (l *Ledger) CancelErasure(ctx context.Context, a Address, actor string) (ErasureResult, error) {
	if a.IsZero() {
		return ErasureResult{}, fmt.Errorf("%w: no address", ErrBadAddress)
	}
	res, err := l.applyErasure(ctx, Change{Subject: a, Erasure: &Erasure{Op: EraseCancel},
		Event: Event{Time: l.now().UTC(), Type: EventErasureCancelled, Subject: a, Actor: actor}})
	if err == nil && !res.Applied {
		return res, ErrNoErasure
	}
	return res, err
}

func (l *Ledger) applyErasure(ctx context.Context, ch Change) (ErasureResult, error) {
	r, err := l.applyOne(ctx, ch)
	if err != nil {
		return ErasureResult{}, err
	}
	out := ErasureResult{Erased: r.Erased, At: r.ErasureAt, Applied: r.Applied}
	if r.Applied {
		out.Event = r.Event
	}
	return out, nil
}

// DueErasure is one scheduled erasure whose time has come
// (Store.DueErasures).
type DueErasure struct {
	Subject Address
	At      time.Time
}

// ErasureSweep counts what EraseDue did.
type ErasureSweep struct {
	// Erased counts the erasures carried out.
	Erased int
	// Skipped counts the due ones not carried out: cancelled or moved
	// since they were listed, or erased by another sweeper.
	Skipped int
}

// sweepBatch is how many due erasures EraseDue reads and writes at once.
const sweepBatch = 100

// EraseDue carries out every scheduled erasure that is due by the
// ledger's clock, sweepBatch at a time, each in one atomic write of its
// subject (the batch shares round trips). An erasure cancelled or moved
// after it was listed is left alone, so two sweepers at once erase each
// subject once; the server runs it under a store lease all the same.
// notify is ErasureRequest.Notify.
func (l *Ledger) EraseDue(ctx context.Context, notify bool) (ErasureSweep, error) {
	var sweep ErasureSweep
	for {
		now := l.now().UTC()
		due, err := l.store.DueErasures(ctx, now, sweepBatch)
		if err != nil {
			return sweep, err
		}
		if len(due) == 0 {
			return sweep, nil
		}
		changes := make([]Change, len(due))
		for i, d := range due {
			changes[i] = Change{Subject: d.Subject, Erasure: &Erasure{Op: EraseNow, Notify: notify, Due: true},
				Event: Event{Time: now, Type: EventSubjectErased, Subject: d.Subject, Actor: ActorSweeper}}
		}
		results, err := l.store.Apply(ctx, changes)
		if err != nil {
			return sweep, err
		}
		erased := 0
		for _, r := range results {
			if r.Applied {
				erased++
			}
		}
		sweep.Erased += erased
		sweep.Skipped += len(due) - erased
		if erased == 0 || len(due) < sweepBatch {
			// A full page with nothing erased would be listed again: the
			// next run gets it, once the store's index has caught up.
			return sweep, nil
		}
	}
}
