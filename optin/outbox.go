package optin

import (
	"context"
	"time"
)

// Outbox is the part of a store that keeps what the outbound webhooks
// and the Mailchimp sync must still send, modelled on a mail
// queue: every event of a subject's main chain (consent, suppression and
// subject events; never a receipt) is appended to the outbox in the same
// atomic write that appends it to the chain, so no change is recorded
// without being queued and nothing is queued that was not recorded.
//
// Each target (an outbound endpoint, the Mailchimp API, ...) has a cursor
// into the outbox and a record per event it took (OutboxDelivery): the
// dispatcher saves a record, with its next retry, before each attempt,
// and moves it to dead or retired when it is done, where it stays until
// PruneOutbox. Of several instances on one store, the one holding the
// target's lease (Store.Lease) works on it; the methods themselves are
// safe for concurrent use.
type Outbox interface {
	// OutboxRead returns up to limit items after the position after ("" is
	// the start of what the outbox still holds), oldest first. Next is
	// the position to read after next time, after itself when nothing is
	// new.
	OutboxRead(ctx context.Context, after string, limit int) (OutboxPage, error)

	// OutboxEnd is the position of the newest item, for a target that
	// starts now rather than with the history; on an empty outbox a
	// position before every item to come, never "", so that a new target
	// can save it at once and miss nothing written after.
	OutboxEnd(ctx context.Context) (string, error)

	// OutboxItem reads the item at pos again (a pending delivery after a
	// restart, a replay). ErrNotFound when it was pruned.
	OutboxItem(ctx context.Context, pos string) (OutboxItem, error)

	// OutboxCursor is where target took its last item; ErrNotFound for a
	// target never saved.
	OutboxCursor(ctx context.Context, target string) (string, error)

	// SaveDeliveries stores the records of ds (each of target; a record
	// replaces the one with its EventID) and, when cursor is not "",
	// moves target's cursor to it, all in one atomic write. A call that
	// saves records or a cursor is target's sign of life for PruneOutbox:
	// the store notes when (by its clock).
	SaveDeliveries(ctx context.Context, target string, ds []OutboxDelivery, cursor string) error

	// Deliveries pages through the records of one status, oldest
	// (Created) first, of one target or, with q.Target "", of all.
	Deliveries(ctx context.Context, q DeliveryQuery) (DeliveryPage, error)

	// Delivery reads one record; ErrNotFound when there is none.
	Delivery(ctx context.Context, target, eventID string) (OutboxDelivery, error)

	// PruneOutbox deletes the dead and retired records done before
	// before, and the outbox items older than before that every saved
	// cursor has passed, and returns how many records and items went.
	//
	// A target that has not saved (SaveDeliveries) since before has not
	// worked for the whole retention (it was removed from the
	// configuration, say): it no longer holds items back, and its cursor
	// is deleted (OutboxCursor then says ErrNotFound; its records are
	// pruned as any others). Should it come back, it starts at the end,
	// as a new target does. So a live target must save more often than
	// the retention, also when it has nothing new to take. An item not
	// older than before is never deleted. A cursor saved by a store
	// version that noted no sign of life counts as seen at the first
	// PruneOutbox that finds it.
	PruneOutbox(ctx context.Context, before time.Time) (int, error)

	// Seen reports whether key was marked (Mark) and its mark has not
	// run out: an inbound webhook delivery applied already. Keys are
	// hashes, never personal data.
	Seen(ctx context.Context, key string) (bool, error)

	// Mark remembers key until until.
	Mark(ctx context.Context, key string, until time.Time) error
}

// OutboxItem is one event of the outbox.
type OutboxItem struct {
	// Pos is the item's position: opaque, ordered as the writes were.
	Pos string
	// SubjectID is the subject's keyed hash: the dispatcher keeps each
	// subject's events in order by it, also once the subject is erased.
	SubjectID string
	// Event is opened: Subject and Details can be read unless the subject
	// was erased (Event.Erased).
	Event Event
}

// OutboxPage is one page of OutboxRead.
type OutboxPage struct {
	Items []OutboxItem
	Next  string
}

// DeliveryStatus is where an outbox delivery stands.
type DeliveryStatus string

const (
	// DeliveryPending is waiting for its (next) attempt.
	DeliveryPending DeliveryStatus = "pending"
	// DeliveryDead gave up: refused for good, or still failing after the
	// dispatcher's dead-letter age. An operator can replay it.
	DeliveryDead DeliveryStatus = "dead"
	// DeliveryRetired was delivered; kept a while so that an operator can
	// see what went out.
	DeliveryRetired DeliveryStatus = "retired"
)

// Valid reports whether s is a known status.
func (s DeliveryStatus) Valid() bool {
	return s == DeliveryPending || s == DeliveryDead || s == DeliveryRetired
}

// OutboxDelivery is the record of one event's delivery to one target. It
// holds no personal data: the event is read again from the outbox by Pos.
type OutboxDelivery struct {
	Target    string         `json:"target"`
	EventID   string         `json:"event_id"`
	EventType EventType      `json:"event_type"`
	Pos       string         `json:"pos"`
	SubjectID string         `json:"subject_id"`
	Status    DeliveryStatus `json:"status"`
	Attempts  int            `json:"attempts"`
	// Created is when the target took the event from the outbox; the
	// dead-letter age counts from it.
	Created time.Time `json:"created"`
	// NextAt is when a pending delivery is tried next; it is saved before
	// each attempt, so a crash during one retries at NextAt.
	NextAt time.Time `json:"next_at,omitzero"`
	LastAt time.Time `json:"last_at,omitzero"`
	// LastError says why the last attempt failed, with no personal data
	// (a status code, a timeout, ...).
	LastError string    `json:"last_error,omitempty"`
	DoneAt    time.Time `json:"done_at,omitzero"`
}

// ID names the delivery in the outbox commands and the API, and is the
// webhook-id its receiver deduplicates by: the target, a dot and the
// event's id (target names hold no dot).
func (d OutboxDelivery) ID() string { return d.Target + "." + d.EventID }

// DeliveryQuery selects delivery records.
type DeliveryQuery struct {
	Target string
	Status DeliveryStatus
	Cursor string
	// Limit caps the page (PageSize).
	Limit int
}

// DeliveryPage is one page of Deliveries.
type DeliveryPage struct {
	Deliveries []OutboxDelivery
	NextCursor string
}
