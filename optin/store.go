package optin

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// Store keeps the ledger: subjects' current state and the append-only,
// hash-chained event log. Two implementations (the embedded file store
// and Redis) pass one conformance suite. All methods are safe for
// concurrent use, also by several processes on one Redis. Errors wrap
// ErrNotFound, ErrUnavailable (retry later; fail closed) or ErrCorrupt.
//
// A store is opened with the ledger key (Keys) and holds nothing personal
// that can be read without it: addresses are sealed under each
// subject's own key, subject keys are wrapped under the ledger key, and
// subjects are named by keyed hashes. A store keeps a check of its key
// and refuses another (ErrBadKey).
//
// Stores do not decide: they load SubjectState, call its Apply, and write
// the state and the sealed event back atomically.
type Store interface {
	// Apply applies changes in order, each atomically for its subject; a
	// batch shares round trips (an import of many rows takes a few, not
	// one per row). Results are in the order of changes. On error, some
	// changes of the batch may have been applied; each is still atomic.
	// Receipts (message.relayed and message.blocked) for addresses just
	// looked up take one round trip per batch: the write checks that
	// their chains are where the lookup found them.
	Apply(ctx context.Context, changes []Change) ([]Result, error)

	// Subject returns the current state of one subject, with each
	// consent's Evidence filled from its recording event, and its most
	// recent events (up to recent, oldest first). ErrNotFound when
	// nothing is stored about the address.
	Subject(ctx context.Context, a Address, recent int) (*SubjectView, error)

	// Lookup returns, for each address of q in order, its record for
	// q.Purpose and its suppressions, and with q.Message whether a copy
	// of that message was delivered to it (Standing.Delivered), in one
	// round trip whatever the count.
	Lookup(ctx context.Context, q LookupQuery) ([]Standing, error)

	// Events pages through the log oldest first.
	Events(ctx context.Context, q EventQuery) (EventPage, error)

	// Suppressions pages through all suppressed addresses.
	Suppressions(ctx context.Context, cursor string, limit int) (SuppressionPage, error)

	// Verify checks every subject's chains and names the broken ones.
	Verify(ctx context.Context) (VerifyReport, error)

	// Subjects pages through every subject's current state (addresses,
	// consents, suppressions; no events), in no particular order, for
	// reports. The cursor is opaque; "" starts.
	Subjects(ctx context.Context, cursor string, limit int) (SubjectPage, error)

	// Rotate re-wraps every subject key that is not under the newest
	// generation of the ledger key, in batches, safely beside writers,
	// and returns how many it re-wrapped; run again, it goes on where it
	// stopped. progress, when not nil, is called after each batch.
	Rotate(ctx context.Context, progress func(rewrapped int)) (int, error)

	// KeyUse counts the subject keys wrapped under each generation.
	KeyUse(ctx context.Context) (map[uint32]int, error)

	// PruneReceipts deletes the receipts older than before from the
	// receipt chains, and returns how many. The chains stay verifiable:
	// each keeps the hash of its last pruned receipt. Events of the main
	// chain are never pruned.
	PruneReceipts(ctx context.Context, before time.Time) (int, error)

	// DueErasures returns up to limit of the subjects whose scheduled
	// erasure is due at now (at or before it), the earliest first, with
	// their addresses, from an index of the scheduled ones: it does not
	// read every subject. Ledger.EraseDue carries them out.
	DueErasures(ctx context.Context, now time.Time, limit int) ([]DueErasure, error)

	// Lease reports whether this instance holds (or now takes) the lease
	// of a periodic job for ttl, so that of several instances on one
	// store one does it; the holder renews it by asking again.
	Lease(ctx context.Context, job string, ttl time.Duration) (bool, error)

	// Outbox keeps what the outbound webhooks and the list sync must
	// still send.
	Outbox

	// Ping reports whether the store is reachable now and still holds
	// its data: an error wrapping ErrDataLost once its marker vanished or
	// changed while this instance used it (then for as long as this
	// instance runs; decisions stay fail-closed).
	Ping(ctx context.Context) error

	Close() error
}

// SubjectPage is one page of Store.Subjects.
type SubjectPage struct {
	Subjects   []SubjectView
	NextCursor string
}

// SubjectView is what Store.Subject returns.
type SubjectView struct {
	Address      Address
	Consents     []Consent // by purpose name
	Suppressions []Suppression
	Events       []Event
	// Erased is true for what an erasure left: no consents, the erased
	// suppression, and events that no longer open (Event.Erased).
	Erased bool
	// ErasureAt is when a scheduled erasure is due; zero when none is.
	ErasureAt time.Time
}

// LookupQuery asks Store.Lookup for what the decisions on one message
// need.
type LookupQuery struct {
	Purpose   string
	Addresses []Address
	// Message, when not "", names a message (smtpproxy's key: "mid:" and
	// its Message-ID, or "sha256:" and a hash of it) and asks whether a
	// copy of it went to each address before, as recorded by
	// Change.Delivered and not yet past its Until.
	Message string
}

// Standing is what a decision needs to know of one recipient.
type Standing struct {
	Address Address
	// Consent is the record for the purpose asked, nil when none.
	Consent      *Consent
	Suppressions []SuppressionReason
	// Delivered is true when LookupQuery.Message already went to the
	// address within its dedup window.
	Delivered bool
}

// Delivery records that the upstream accepted a copy of a message for
// the change's subject, so that the client's retry of a partly relayed
// message skips it. Stores keep it until Until and may forget
// it any time after; it is not part of the subject's history.
type Delivery struct {
	// Message is the key LookupQuery.Message asks by.
	Message string
	Until   time.Time
}

// EventQuery selects events. Zero fields select all.
type EventQuery struct {
	Subject Address
	Type    EventType
	// Since selects events whose time is at or after it.
	Since time.Time
	// Cursor is a NextCursor from an earlier page.
	Cursor string
	// Limit caps the page; stores default to 100 and cap at 1000.
	Limit int
}

// EventPage is one page of events, oldest first; NextCursor is "" on
// the last page.
type EventPage struct {
	Events     []Event
	NextCursor string
}

// SuppressionPage is one page of suppressions.
type SuppressionPage struct {
	Suppressions []Suppression
	NextCursor   string
}

// VerifyReport is the outcome of Store.Verify.
type VerifyReport struct {
	Subjects int `json:"subjects"`
	// Events counts every event checked, receipts included.
	Events int `json:"events"`
	// Receipts counts the receipts among them.
	Receipts int           `json:"receipts"`
	Broken   []BrokenChain `json:"broken"`
}

// BrokenChain names a subject whose chain does not verify and the first
// event where it breaks.
type BrokenChain struct {
	Subject string `json:"subject"` // the address, or the subject id once erased
	Event   string `json:"event"`
}

// Page limits shared by the stores.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// PageSize applies the default and the cap to a requested limit.
func PageSize(limit int) int {
	switch {
	case limit <= 0:
		return DefaultPageSize
	case limit > MaxPageSize:
		return MaxPageSize
	}
	return limit
}

// Check rejects a mark a store could not look up or expire: one without
// a message or an until. A nil Delivery is fine. Errors wrap ErrBadInput.
func (d *Delivery) Check() error {
	switch {
	case d == nil:
		return nil
	case d.Message == "":
		return fmt.Errorf("%w: delivery without a message", ErrBadInput)
	case d.Until.IsZero():
		return fmt.Errorf("%w: delivery without an until", ErrBadInput)
	}
	return nil
}

// MessageHash is what stores keep of a Delivery's message key: the first
// 16 bytes of its SHA-256 (Redis keeps the first 8, per subject). Message keys can be long (a Message-ID); a hash
// of fixed length keeps a mark small and the key itself out of storage.
func MessageHash(message string) []byte {
	sum := sha256.Sum256([]byte(message))
	return sum[:16]
}
