package webhooks

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"optinproxy/optin"
)

// worker works on one target. Its state is touched only by its run
// goroutine; attempts run in goroutines of their own and report back on
// done.
type worker struct {
	d      *Dispatcher
	t      Target
	name   string
	job    string
	conc   int
	log    *slog.Logger
	done   chan attemptResult
	reload chan struct{}
	actx   context.Context // of the attempts
	// stop ends the worker's run and exited is closed when it returned;
	// both are set by startWorker, under the Dispatcher's mu.
	stop   context.CancelFunc
	exited chan struct{}

	leased     bool
	leaseAt    time.Time // when the lease was last confirmed
	gen        int       // bumped when the lease is lost: older results are stale
	cursor     string
	queues     map[string][]optin.OutboxDelivery // pending, per subject, in order
	known      map[string]bool                   // event ids in queues
	events     map[string]optin.Event            // events just taken, until their first attempt
	busy       map[string]bool                   // subjects with an attempt under way
	pending    int
	inflight   int
	reloadedAt time.Time
	savedAt    time.Time // when the cursor was last saved (touch)
	created    time.Time // the last Created given, so that the next is later
}

// attemptResult is an attempt's outcome as the worker applies it.
type attemptResult struct {
	gen int
	rec optin.OutboxDelivery
}

func newWorker(d *Dispatcher, t Target) *worker {
	conc := d.opts.Concurrency
	if c, ok := t.(Concurrent); ok && c.Concurrency() > 0 {
		conc = c.Concurrency()
	}
	name := t.Name()
	return &worker{
		d:      d,
		t:      t,
		name:   name,
		job:    "outbox:" + name,
		conc:   conc,
		log:    d.log.With("target", name),
		done:   make(chan attemptResult),
		reload: make(chan struct{}, 1),
	}
}

// reloadSoon asks the worker to read its pending records again (a
// replay); safe from any goroutine.
func (w *worker) reloadSoon() {
	select {
	case w.reload <- struct{}{}:
	default:
	}
}

// run works until ctx ends, then waits for the attempts under way, which
// run with actx.
func (w *worker) run(ctx, actx context.Context) {
	w.actx = actx
	tick := time.NewTicker(w.d.opts.Poll)
	defer tick.Stop()
	defer func() {
		for w.inflight > 0 {
			<-w.done
			w.inflight--
		}
	}()
	for {
		w.step(ctx)
		for again := true; again; {
			select {
			case <-ctx.Done():
				return
			case r := <-w.done:
				w.finish(r)
				if w.pending == 0 && w.inflight == 0 {
					again = false // the queue ran dry: read more now
				} else {
					w.launch(ctx)
				}
			case <-w.reload:
				w.reloadedAt = time.Time{}
				again = false
			case <-tick.C:
				again = false
			}
		}
	}
}

// step holds the lease, takes new events, and starts what is due.
func (w *worker) step(ctx context.Context) {
	if !w.holdLease(ctx) {
		return
	}
	now := w.d.opts.Now()
	if now.Sub(w.reloadedAt) >= w.d.opts.Reload || w.reloadedAt.After(now) {
		if err := w.loadPending(ctx); err != nil {
			w.logErr(ctx, "load pending deliveries", err)
			return
		}
		w.reloadedAt = now
	}
	if err := w.take(ctx); err != nil {
		w.logErr(ctx, "read outbox", err)
	} else if err := w.touch(ctx, now); err != nil {
		w.logErr(ctx, "save outbox cursor", err)
	}
	w.launch(ctx)
}

// touch saves the cursor again when it was not saved for touchEvery
// (and once after the lease was taken): PruneOutbox forgets a target
// that has not saved for RetiredFor, as one removed from the
// configuration, which must not befall one that merely had nothing new
// to take; forgotten, it would start at the outbox's end after a
// restart and miss what was written while it was down.
func (w *worker) touch(ctx context.Context, now time.Time) error {
	if w.cursor == "" || (now.Sub(w.savedAt) < w.d.opts.touchEvery() && !w.savedAt.After(now)) {
		return nil
	}
	if err := w.d.opts.Store.SaveDeliveries(ctx, w.name, nil, w.cursor); err != nil {
		return err
	}
	w.savedAt = now
	return nil
}

// touchEvery is how often a target saves its cursor when nothing else
// does: a quarter of RetiredFor, at most an hour (a small write per
// target an hour).
func (o *DispatcherOptions) touchEvery() time.Duration {
	return min(o.RetiredFor/4, time.Hour)
}

// holdLease takes or renews the target's lease; on its loss the target's
// state is dropped (attempts under way finish), on taking it the state is
// loaded from the store.
func (w *worker) holdLease(ctx context.Context) bool {
	now := time.Now() // the lease runs on the store's clock, not the injected one
	if w.leased && now.Sub(w.leaseAt) < w.d.opts.LeaseTTL/3 {
		return true
	}
	ok, err := w.d.opts.Store.Lease(ctx, w.job, w.d.opts.LeaseTTL)
	if err != nil {
		w.logErr(ctx, "outbox lease", err)
		ok = false
	}
	switch {
	case ok && !w.leased:
		if err := w.start(ctx); err != nil {
			w.logErr(ctx, "start target", err)
			return false
		}
		w.log.Info("outbox lease taken", "pending", w.pending)
	case !ok && w.leased:
		w.log.Info("outbox lease lost")
		w.drop()
	}
	if ok {
		w.leased, w.leaseAt = true, now
	}
	return ok
}

// place returns target's cursor; a target never saved gets the outbox's
// end, saved: a new target starts with what happens from now on, not the
// history.
func place(ctx context.Context, st OutboxStore, target string) (string, error) {
	cursor, err := st.OutboxCursor(ctx, target)
	if errors.Is(err, optin.ErrNotFound) {
		if cursor, err = st.OutboxEnd(ctx); err == nil && cursor != "" {
			err = st.SaveDeliveries(ctx, target, nil, cursor)
		}
	}
	return cursor, err
}

// start loads the cursor (the outbox's end for a target never saved) and
// the pending records.
func (w *worker) start(ctx context.Context) error {
	w.drop()
	cursor, err := place(ctx, w.d.opts.Store, w.name)
	if err != nil {
		return err
	}
	if err := w.loadPending(ctx); err != nil {
		return err
	}
	// savedAt stays zero: the first step saves the cursor, so the target
	// is seen as soon as an instance works on it.
	w.cursor, w.reloadedAt, w.savedAt = cursor, w.d.opts.Now(), time.Time{}
	return nil
}

// drop forgets the target's state; results of attempts under way will be
// ignored.
func (w *worker) drop() {
	w.leased = false
	w.gen++
	w.cursor = ""
	w.queues = make(map[string][]optin.OutboxDelivery)
	w.known = make(map[string]bool)
	w.events = make(map[string]optin.Event)
	w.busy = make(map[string]bool)
	w.pending = 0
	w.d.metrics.setPending(w.name, 0)
}

// loadPending adds the target's pending records that are not in memory
// yet (after a restart, a take-over, a replay), oldest first.
func (w *worker) loadPending(ctx context.Context) error {
	q := optin.DeliveryQuery{Target: w.name, Status: optin.DeliveryPending, Limit: optin.MaxPageSize}
	for {
		page, err := w.d.opts.Store.Deliveries(ctx, q)
		if err != nil {
			return err
		}
		for _, rec := range page.Deliveries {
			w.add(rec)
		}
		if page.NextCursor == "" || len(page.Deliveries) == 0 {
			break
		}
		q.Cursor = page.NextCursor
	}
	w.d.metrics.setPending(w.name, w.pending)
	return nil
}

// add queues rec behind its subject's earlier deliveries.
func (w *worker) add(rec optin.OutboxDelivery) {
	if w.known[rec.EventID] {
		return
	}
	w.known[rec.EventID] = true
	if rec.Created.After(w.created) {
		w.created = rec.Created
	}
	w.queues[rec.SubjectID] = append(w.queues[rec.SubjectID], rec)
	w.pending++
}

// take reads new outbox items, records a pending delivery for each the
// target wants and moves the cursor past all of them, in one write per
// page, until the outbox is read or MaxPending are waiting.
func (w *worker) take(ctx context.Context) error {
	o := w.d.opts
	for w.pending < o.MaxPending {
		page, err := o.Store.OutboxRead(ctx, w.cursor, o.Batch)
		if err != nil {
			return err
		}
		now := o.Now()
		var recs []optin.OutboxDelivery
		for _, it := range page.Items {
			if !w.t.Wants(it.Event) {
				continue
			}
			// Each record is Created later than the one before, even within
			// a read or on a clock that stands still, so that loading them
			// oldest first keeps the outbox's order.
			created := now
			if !created.After(w.created) {
				created = w.created.Add(time.Nanosecond)
			}
			w.created = created
			recs = append(recs, optin.OutboxDelivery{
				Target:    w.name,
				EventID:   it.Event.ID,
				EventType: it.Event.Type,
				Pos:       it.Pos,
				SubjectID: it.SubjectID,
				Status:    optin.DeliveryPending,
				Created:   created,
				NextAt:    now,
			})
		}
		if page.Next != w.cursor || len(recs) > 0 {
			if err := o.Store.SaveDeliveries(ctx, w.name, recs, page.Next); err != nil {
				return err
			}
			w.savedAt = now
		}
		w.cursor = page.Next
		for _, rec := range recs {
			w.add(rec)
		}
		for _, it := range page.Items {
			if w.known[it.Event.ID] {
				w.events[it.Event.ID] = it.Event
			}
		}
		w.d.metrics.setPending(w.name, w.pending)
		if len(page.Items) < o.Batch {
			return nil
		}
	}
	return nil
}

// launch starts an attempt for each subject whose oldest pending
// delivery is due, while fewer than conc run.
func (w *worker) launch(ctx context.Context) {
	if !w.leased || ctx.Err() != nil {
		return
	}
	now := w.d.opts.Now()
	for subject, q := range w.queues {
		if w.inflight >= w.conc {
			return
		}
		if w.busy[subject] || q[0].NextAt.After(now) {
			continue
		}
		w.busy[subject] = true
		w.inflight++
		rec, gen := q[0], w.gen
		// The first attempt sends the event as read with the outbox page,
		// saving a read; later ones read it again.
		ev, ok := w.events[rec.EventID]
		delete(w.events, rec.EventID)
		var event *optin.Event
		if ok {
			event = &ev
		}
		go func() { w.done <- attemptResult{gen: gen, rec: w.attempt(w.actx, rec, event)} }()
	}
}

// finish applies an attempt's outcome to the queues.
func (w *worker) finish(r attemptResult) {
	w.inflight--
	if r.gen != w.gen {
		return
	}
	subject := r.rec.SubjectID
	delete(w.busy, subject)
	q := w.queues[subject]
	i := slices.IndexFunc(q, func(d optin.OutboxDelivery) bool { return d.EventID == r.rec.EventID })
	if i < 0 {
		return
	}
	if r.rec.Status == optin.DeliveryPending {
		q[i] = r.rec
		return
	}
	q = slices.Delete(q, i, i+1)
	if len(q) == 0 {
		delete(w.queues, subject)
	} else {
		w.queues[subject] = q
	}
	delete(w.known, r.rec.EventID)
	w.pending--
	w.d.metrics.setPending(w.name, w.pending)
}

// logErr logs a store error unless the worker is stopping.
func (w *worker) logErr(ctx context.Context, what string, err error) {
	if ctx.Err() == nil {
		w.log.Warn(what, "err", err)
	}
}
