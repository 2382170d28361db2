package webhooks

import (
	"context"
	"errors"
	"time"

	"optinproxy/optin"
)

// saveTimeout bounds the write of an attempt's outcome, which goes on
// while the Dispatcher closes so that a delivery made is recorded.
const saveTimeout = 10 * time.Second

// attempt makes one delivery attempt of rec and returns the record as
// saved after it. Before the attempt the record is saved with its next
// retry, so that a crash during it retries then. event is rec's event when
// the worker has it at hand; nil reads it from the outbox.
func (w *worker) attempt(ctx context.Context, rec optin.OutboxDelivery, event *optin.Event) optin.OutboxDelivery {
	o := w.d.opts
	st := o.Store
	now := o.Now()
	before := rec
	rec.Attempts++
	rec.LastAt = now
	rec.NextAt = now.Add(o.Backoff(rec.Attempts))
	if err := st.SaveDeliveries(ctx, w.name, []optin.OutboxDelivery{rec}, ""); err != nil {
		w.logErr(ctx, "save delivery", err)
		before.NextAt = now.Add(o.Poll) // not attempted; try again soon
		return before
	}
	var item optin.OutboxItem
	var err error
	if event != nil {
		item.Event = *event
	} else {
		item, err = st.OutboxItem(ctx, rec.Pos)
	}
	var retry bool
	switch {
	case errors.Is(err, optin.ErrNotFound):
		retry, err = false, errors.New("webhooks: event no longer in the outbox")
	case err != nil:
		w.logErr(ctx, "read outbox item", err)
		return rec // saved as pending with its next retry
	default:
		retry, err = w.t.Deliver(ctx, Delivery{ID: DeliveryID(w.name, rec.EventID), Event: item.Event, Attempt: rec.Attempts})
		if err != nil && ctx.Err() != nil {
			return rec // cut short by Close: pending, as saved
		}
	}

	now = o.Now()
	outcome := w.outcome(&rec, now, retry, err)
	w.d.metrics.outcome(w.name, outcome)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	if serr := st.SaveDeliveries(sctx, w.name, []optin.OutboxDelivery{rec}, ""); serr != nil {
		// The store keeps the record pending with the next retry saved
		// before the attempt: it is tried again then (a receiver sees a
		// delivered event twice, under the same webhook-id).
		w.log.Warn("save delivery outcome", "event_id", rec.EventID, "outcome", outcome, "err", serr)
		rec.Status, rec.DoneAt = optin.DeliveryPending, time.Time{}
	}
	return rec
}

// outcome moves rec to where the attempt that ended at now leaves it and
// names the outcome for the metric.
func (w *worker) outcome(rec *optin.OutboxDelivery, now time.Time, retry bool, err error) string {
	o := w.d.opts
	if err == nil {
		rec.Status, rec.DoneAt, rec.LastError, rec.NextAt = optin.DeliveryRetired, now, "", time.Time{}
		return outcomeDelivered
	}
	rec.LastError = err.Error()
	if !retry || now.Sub(rec.Created) > o.DeadAfter {
		rec.Status, rec.DoneAt, rec.NextAt = optin.DeliveryDead, now, time.Time{}
		w.log.Error("delivery dead: an operator can replay it (optinproxy outbox list, outbox replay)", "event_id", rec.EventID, "event_type", rec.EventType, "attempts", rec.Attempts, "err", rec.LastError)
		return outcomeDead
	}
	rec.NextAt = now.Add(max(o.Backoff(rec.Attempts), retryAfter(err)))
	w.log.Info("delivery failed", "event_id", rec.EventID, "attempts", rec.Attempts, "next_at", rec.NextAt, "err", rec.LastError)
	return outcomeRetry
}
