package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"optinproxy/optin"
)

// Apply applies changes, as Store.Apply does, or journals them.
//
// While the journal is empty, changes go to the store (each try bounded
// by Options.StoreTimeout), and its results and error come back as they
// are when it succeeds or refuses a change (an error wrapping
// optin.ErrBadInput or optin.ErrBadAddress: the caller's to fix, and
// nothing was written). On any other error (the store unreachable, a
// timeout, ctx ending, a conflict, data lost...) the outcome is unknown;
// the changes then go to the journal, to be replayed with Once. While
// the journal is not empty, changes go to it at once, after the ones
// before: the store would otherwise see them out of order.
//
// Journaled changes are acknowledged: Apply returns nil once their frame
// is synced to disk (it waits for that even past ctx's end), with
// results as if applied: Applied true, and the Event with its id, time
// and subject (no Prev or Hash; no Consent). An error wrapping ErrWrite
// means the journal could not take them either (the caller must not
// acknowledge them); one wrapping ErrClosed, that Close was called; one
// wrapping optin.ErrBadInput, that one call's changes exceed a frame
// (64 MiB sealed).
//
// Every change gets its event's time (Options.Now, cut to the
// millisecond for receipts) and id before the first try, as the store
// would give them, so that a replay is recognized. Changes without a
// subject, or with a Delivered mark the store would refuse, are refused
// here, before anything is tried.
func (j *Journal) Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	if j.closed.Load() {
		return nil, ErrClosed
	}
	own, err := j.prepare(changes)
	if err != nil {
		return nil, err
	}
	if j.depth.Load() == 0 {
		tctx, cancel := context.WithTimeout(ctx, j.opts.StoreTimeout)
		results, err := j.opts.Store.Apply(tctx, own)
		cancel()
		if err == nil || refused(err) {
			return results, err
		}
		if j.outage.CompareAndSwap(false, true) {
			j.log.Warn("store failed to take changes; journaling them until it is back", "changes", len(own), "err", err)
		}
	}
	if err := j.append(own); err != nil {
		return nil, err
	}
	return journaledResults(own), nil
}

// refused reports whether the store refused a change as bad: trying
// again cannot help, and nothing was written.
func refused(err error) bool {
	return errors.Is(err, optin.ErrBadInput) || errors.Is(err, optin.ErrBadAddress)
}

// prepare copies changes, checks them as the store would, and gives each
// event its time and id.
func (j *Journal) prepare(changes []optin.Change) ([]optin.Change, error) {
	now := j.opts.Now()
	own := make([]optin.Change, len(changes))
	for i, ch := range changes {
		if ch.Subject.IsZero() {
			return nil, fmt.Errorf("journal: apply: change %d: %w: no subject", i, optin.ErrBadAddress)
		}
		if err := ch.Delivered.Check(); err != nil {
			return nil, fmt.Errorf("journal: apply: change %d: %w", i, err)
		}
		e := &ch.Event
		if e.Time.IsZero() {
			e.Time = now
		}
		if e.Type.IsReceipt() {
			e.Time = e.Time.UTC().Truncate(time.Millisecond)
		}
		if e.ID == "" {
			e.ID = optin.NewEventID(e.Time)
		}
		own[i] = ch
	}
	return own, nil
}

// journaledResults are the results of journaled changes.
func journaledResults(changes []optin.Change) []optin.Result {
	out := make([]optin.Result, len(changes))
	for i, ch := range changes {
		e := ch.Event
		e.Subject = ch.Subject
		out[i] = optin.Result{Applied: true, Event: e}
	}
	return out
}
