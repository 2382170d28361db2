package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"optinproxy/optin"
)

// batchChanges is about how many changes a drain hands the store at once
// (whole frames: a batch ends after the frame that reaches it).
const batchChanges = 500

// flight is one drain under way; concurrent callers wait for the same.
type flight struct {
	done chan struct{}
	err  error
}

// Drain writes what the journal holds to the store, in the order it was
// journaled, each change with Once (so that what the store already has
// is not written twice), in batches; once everything is written it
// truncates the file. Changes journaled meanwhile are drained by the
// same attempt. Damaged frames are moved to the side file (see doc.go).
//
// One drain runs at a time: a call while one runs waits for it. A drain
// ends when the journal is empty (nil) or the store fails (its error; the
// drain stops there, and the next goes on from where it stopped); ctx
// bounds only the wait, and Close stops the drain. Call it at start,
// before the relay decides anything (the journal's delivered marks must
// be in the store before a retry is decided); Run and Lookup call it too.
func (j *Journal) Drain(ctx context.Context) error {
	f := j.kick()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("journal: drain: %w", ctx.Err())
	}
}

// kick returns the drain under way, starting one when none runs.
func (j *Journal) kick() *flight {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.flight != nil {
		return j.flight
	}
	f := &flight{done: make(chan struct{})}
	if j.closed.Load() {
		f.err = ErrClosed
		close(f.done)
		return f
	}
	j.flight = f
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		err := j.drain(j.ctx)
		j.mu.Lock()
		j.flight = nil
		j.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f
}

// Lookup passes to the store while the journal is empty (one atomic load
// on the way). Otherwise it fails closed: it waits for a drain (bounded
// by ctx), and when the journal still is not empty after it returns an
// error wrapping optin.ErrUnavailable, since the journaled changes may
// hold delivered marks that the decision needs.
func (j *Journal) Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error) {
	if j.depth.Load() > 0 {
		err := j.Drain(ctx)
		if n := j.depth.Load(); n > 0 {
			if err == nil {
				err = fmt.Errorf("more came while it drained")
			}
			return nil, fmt.Errorf("journal: lookup: %w: %d changes wait in the journal: %v", optin.ErrUnavailable, n, err)
		}
	}
	return j.opts.Store.Lookup(ctx, q)
}

// drain is the body of a flight.
func (j *Journal) drain(ctx context.Context) error {
	start := time.Now()
	applied := 0
	for {
		end := j.size.Load()
		if j.off == end {
			done, err := j.truncate(end)
			if err != nil {
				return err
			}
			if !done {
				continue // frames came meanwhile
			}
			if applied > 0 || j.outage.Load() {
				j.outage.Store(false)
				j.log.Info("journal drained into the store", "changes", applied, "took", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		n, err := j.step(ctx, end)
		applied += n
		if err != nil {
			return fmt.Errorf("journal: drain: %w (%d changes wait)", err, j.depth.Load())
		}
	}
}

// step drains one batch of the frames from j.off on, before end, or sets
// one damaged region aside; it returns the changes applied.
func (j *Journal) step(ctx context.Context, end int64) (int, error) {
	sc := &scanner{r: j.f, aead: j.aead, end: end}
	var frames []region
	n := 0
	for pos := j.off; pos < end && n < batchChanges; {
		r, err := sc.at(pos)
		if err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		if r.damaged() {
			if len(frames) > 0 {
				break // the batch before it first
			}
			return 0, j.skip(r, "damaged", r.why.Error())
		}
		frames = append(frames, r)
		n += len(r.changes)
		pos = r.end
	}
	all := make([]optin.Change, 0, n)
	for _, r := range frames {
		all = append(all, r.changes...)
	}
	err := j.store(ctx, all)
	if err == nil {
		j.done(frames[len(frames)-1].end, n)
		return n, nil
	}
	if !stuck(err) {
		return 0, err
	}
	// A change the store cannot take, however long the drain waits:
	// find it, set it aside, go on with the others.
	applied := 0
	for _, r := range frames {
		err := j.store(ctx, r.changes)
		if err == nil {
			applied += len(r.changes)
			j.done(r.end, len(r.changes))
			continue
		}
		if !stuck(err) {
			return applied, err
		}
		m, err := j.sift(ctx, r)
		applied += m
		if err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// stuck reports whether the store refuses a change for good: as bad
// (which Apply checks for before it journals, so this should not
// happen), or because its subject's stored data does not decode (which
// takes repair by hand). Waiting for such a change would keep every
// Lookup failing closed; the drain sets it aside instead. Errors of the
// ledger key (optin.ErrBadKey, ErrKeyGeneration) concern every subject
// alike and are waited out: the operator fixes the key file.
func stuck(err error) bool {
	return refused(err) || errors.Is(err, optin.ErrCorrupt)
}

// sift applies the changes of frame r one at a time, sets aside those
// the store cannot take (in a frame of their own, in the side file), and
// goes on after r; it returns the changes applied.
func (j *Journal) sift(ctx context.Context, r region) (int, error) {
	var bad []optin.Change
	var why error
	applied := 0
	for _, ch := range r.changes {
		err := j.store(ctx, []optin.Change{ch})
		switch {
		case err == nil:
			applied++
		case stuck(err):
			bad, why = append(bad, ch), err
		default:
			return applied, err // r is tried again, its changes with Once
		}
	}
	if len(bad) > 0 {
		frame, err := sealFrame(j.aead, bad)
		if err == nil {
			err = j.putAside(bytes.NewReader(frame))
		}
		if err != nil {
			return applied, err
		}
		j.log.Error("journaled changes set aside: the store cannot take them", "changes", len(bad), "of", len(r.changes),
			"why", why.Error(), "side_file", j.side)
	}
	j.done(r.end, len(r.changes))
	return applied, nil
}

// store applies changes to the store within Options.StoreTimeout.
func (j *Journal) store(ctx context.Context, changes []optin.Change) error {
	ctx, cancel := context.WithTimeout(ctx, j.opts.StoreTimeout)
	defer cancel()
	_, err := j.opts.Store.Apply(ctx, changes)
	return err
}

// done records that the store has everything before end: n changes more.
func (j *Journal) done(end int64, n int) {
	j.off = end
	j.depth.Add(-int64(n))
}

// skip moves r to the side file, logs it, and goes on after it.
func (j *Journal) skip(r region, what, why string) error {
	if err := j.putAside(io.NewSectionReader(j.f, r.off, r.end-r.off)); err != nil {
		return err
	}
	j.log.Error("journal frame set aside: "+what, "bytes", r.end-r.off, "offset", r.off, "why", why, "side_file", j.side)
	j.off = r.end
	return nil
}

// truncate empties the file once the drain reached end and nothing was
// written after it; false when something was.
func (j *Journal) truncate(end int64) (bool, error) {
	j.fileMu.Lock()
	defer j.fileMu.Unlock()
	if j.size.Load() != end {
		return false, nil
	}
	if end == 0 {
		return true, nil
	}
	if err := j.f.Truncate(0); err != nil {
		j.fail(err)
		return false, fmt.Errorf("journal: truncate: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		j.fail(err)
		return false, fmt.Errorf("journal: truncate: %w", err)
	}
	j.syncs.Add(1)
	j.size.Store(0)
	j.off = 0
	return true, nil
}
