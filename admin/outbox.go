package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"optinproxy/optin"
)

// Outbox is what the API shows and does of the outbound dispatcher:
// its delivery records, and a dead delivery sent again. The webhooks
// package's Dispatcher provides it; cmd passes it in.
type Outbox interface {
	Deliveries(ctx context.Context, q optin.DeliveryQuery) (optin.DeliveryPage, error)
	// Replay puts the dead delivery id (optin.OutboxDelivery.ID) back in the
	// queue; optin.ErrNotFound when there is no such dead delivery.
	Replay(ctx context.Context, id string) (optin.OutboxDelivery, error)
}

// Syncer pulls the Mailchimp audience into the ledger and answers its
// report (a JSON object).
type Syncer func(ctx context.Context) (any, error)

type deliveryJSON struct {
	ID        string               `json:"id"`
	Target    string               `json:"target"`
	EventID   string               `json:"event_id"`
	EventType optin.EventType      `json:"event_type"`
	Status    optin.DeliveryStatus `json:"status"`
	Attempts  int                  `json:"attempts"`
	Created   time.Time            `json:"created"`
	NextAt    time.Time            `json:"next_at,omitzero"`
	LastAt    time.Time            `json:"last_at,omitzero"`
	LastError string               `json:"last_error,omitempty"`
	DoneAt    time.Time            `json:"done_at,omitzero"`
}

func toDeliveryJSON(d optin.OutboxDelivery) deliveryJSON {
	return deliveryJSON{ID: d.ID(), Target: d.Target, EventID: d.EventID, EventType: d.EventType,
		Status: d.Status, Attempts: d.Attempts, Created: d.Created, NextAt: d.NextAt, LastAt: d.LastAt,
		LastError: d.LastError, DoneAt: d.DoneAt}
}

type deliveriesJSON struct {
	Deliveries []deliveryJSON `json:"deliveries"`
	NextCursor string         `json:"next_cursor"`
}

// listOutbox: GET /api/v1/outbox/{status} (dead, pending or retired),
// with target=, cursor= and limit=.
func (a *API) listOutbox(w http.ResponseWriter, r *http.Request, _ principal) {
	if a.opts.Outbox == nil {
		notConfigured(w, "no outbound webhook or Mailchimp sync is configured, so there is no outbox")
		return
	}
	status := optin.DeliveryStatus(r.PathValue("status"))
	if !status.Valid() {
		writeError(w, http.StatusNotFound, "not_found", "no such list: want /api/v1/outbox/dead, /pending or /retired")
		return
	}
	q := optin.DeliveryQuery{Status: status, Target: r.URL.Query().Get("target"), Cursor: r.URL.Query().Get("cursor")}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			badRequest(w, "limit must be a positive number")
			return
		}
		q.Limit = n
	}
	page, err := a.opts.Outbox.Deliveries(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := deliveriesJSON{Deliveries: make([]deliveryJSON, 0, len(page.Deliveries)), NextCursor: page.NextCursor}
	for _, d := range page.Deliveries {
		out.Deliveries = append(out.Deliveries, toDeliveryJSON(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// replayDead: POST /api/v1/outbox/dead/{id}/replay.
func (a *API) replayDead(w http.ResponseWriter, r *http.Request, p principal) {
	if a.opts.Outbox == nil {
		notConfigured(w, "no outbound webhook or Mailchimp sync is configured, so there is no outbox")
		return
	}
	d, err := a.opts.Outbox.Replay(r.Context(), r.PathValue("id"))
	if errors.Is(err, optin.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no dead delivery "+strconv.Quote(r.PathValue("id"))+"; the dead ones are listed by GET /api/v1/outbox/dead (optinproxy outbox list)")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("dead delivery replayed", "delivery", d.ID(), "token", p.name)
	writeJSON(w, http.StatusOK, toDeliveryJSON(d))
}

// syncMailchimp: POST /api/v1/sync/mailchimp pulls the configured
// audience into the ledger and answers the counts.
func (a *API) syncMailchimp(w http.ResponseWriter, r *http.Request, p principal) {
	if a.opts.MailchimpSync == nil {
		notConfigured(w, "webhooks.mailchimp_api is not configured")
		return
	}
	report, err := a.opts.MailchimpSync(r.Context())
	if err != nil {
		var se *SyncError
		if errors.As(err, &se) {
			a.log.Warn("mailchimp sync failed", "err", err, "token", p.name)
			writeError(w, http.StatusBadGateway, "sync_failed", se.Error())
			return
		}
		a.fail(w, r, err)
		return
	}
	a.log.Info("mailchimp sync done", "token", p.name)
	writeJSON(w, http.StatusOK, report)
}

// SyncError is a sync that failed on Mailchimp's side (refused key,
// unknown list, Mailchimp down): answered 502 with its text, which must
// hold no personal data.
type SyncError struct{ Err error }

func (e *SyncError) Error() string { return e.Err.Error() }
func (e *SyncError) Unwrap() error { return e.Err }

func notConfigured(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusConflict, "not_configured", msg)
}
