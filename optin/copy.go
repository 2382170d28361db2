package optin

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotEmpty means a store asked to take a copied ledger (Restorer)
// already holds a ledger, and not one this copy was writing: copying
// into it would mix two ledgers.
var ErrNotEmpty = errors.New("optin: the target store is not empty")

// ErrCopying means a store is the target of a copy that has not ended:
// it holds part of a ledger. Stores refuse to open it but for the copy
// itself, which is run again to finish it.
var ErrCopying = errors.New("optin: the store is the target of an unfinished copy")

// A copy moves a whole ledger from one store to another as it is stored:
// sealed, each subject key still wrapped under the ledger key, nothing
// opened or sealed again, so every hash, chain link and key arrives as it
// was. Both stores implement Dumper and Restorer; Copy drives them.
//
// What is copied: every subject (sealed address, wrapped key, consent
// records, suppressions, a scheduled erasure, where a key made after an
// erasure starts), both its chains (the receipt chain with its pruned
// stretch's count and last hash), the global order of the log, and the
// outbox (its items, erasure notices included, and each target's cursor,
// last save and delivery records, dead letters included). What is not:
// leases (held by running instances, which a copy needs stopped), the
// relay's delivery marks and the inbound webhooks' dedup marks (short
// windows, kept in forms the two stores do not share; a retry within the
// window after a move is delivered or applied again, as after a restart
// without them).

// Dumper reads a ledger raw, for Copy.
type Dumper interface {
	// Dump hands fn every subject as stored, about batch at a time, in
	// no particular order, and then returns the outbox. The store must
	// not be written meanwhile (the servers stopped): a subject written
	// during the dump may be copied in either state.
	Dump(ctx context.Context, batch int, fn func([]SubjectDump) error) (OutboxDump, error)
}

// Restorer writes a ledger Dumper read into an empty store, so that a
// copy cut short can be run again and goes on where it stopped.
type Restorer interface {
	// BeginRestore marks the store as the target of the copy named id
	// (the same id names the same copy when run again). It returns an
	// error wrapping ErrNotEmpty when the store holds a ledger and is not
	// the target of the copy id.
	BeginRestore(ctx context.Context, id string) error

	// RestoreSubjects writes each subject not stored yet, each with both
	// its chains atomically, and returns how many it wrote: a subject
	// written by an earlier run is skipped.
	RestoreSubjects(ctx context.Context, subjects []SubjectDump) (int, error)

	// EndRestore writes what needs every subject first (the log's
	// global order, the outbox) and takes the mark of BeginRestore away.
	// Run again after an interruption, it writes the same.
	EndRestore(ctx context.Context, outbox OutboxDump) error
}

// SubjectDump is one subject as a store keeps it.
type SubjectDump struct {
	ID string
	// SealedAddress is the address sealed under the subject key
	// (SealAddress), WrappedKey the subject key wrapped under a
	// generation of the ledger key; both nil once erased.
	SealedAddress, WrappedKey []byte
	// Consents are the records by purpose, without Subject and Evidence
	// (the recording event, named by EventID, holds it).
	Consents     map[string]Consent
	Suppressions map[SuppressionReason]time.Time
	ErasureAt    time.Time
	// Events is the main chain, Receipts what pruning left of the
	// receipt chain, each in chain order.
	Events, Receipts []DumpedEvent
	// Pruned counts the receipts pruned from the front, PrunedHead is
	// the last one's hash (hex): the first receipt left follows it.
	Pruned     int64
	PrunedHead string
	// KeyFrom is where the events the subject key opens start: the index
	// in the main chain and the absolute index in the receipt chain. The
	// events before were sealed under a key an erasure destroyed (the
	// subject came back since). Zero: every event.
	KeyFrom [2]int64
}

// DumpedEvent is a stored event with its place in the whole log.
type DumpedEvent struct {
	SealedEvent
	// Seq orders the event among all the ledger's events as the source
	// lists them (Store.Events without a subject); unique, not dense.
	Seq uint64
}

// OutboxDump is what the outbox holds. Positions are given as the Seq of
// the event an item queues, so that each store makes its own.
type OutboxDump struct {
	Items   []DumpedItem
	Targets []DumpedTarget
}

// DumpedItem is one item of the outbox.
type DumpedItem struct {
	Seq    uint64 // of its event
	Queued time.Time
	// Notice is an erasure's notice (Keyring.SealNotice), nil for none.
	Notice []byte
}

// DumpedTarget is one target's place in the outbox and its records.
type DumpedTarget struct {
	Name string
	// Cursor is the Seq of the last item the target took (0: before
	// every item left); HasCursor is false for a target never saved.
	Cursor    uint64
	HasCursor bool
	// Saved is its last sign of life (zero when none was noted).
	Saved time.Time
	// Deliveries are its records, each with Pos set to the Seq of its
	// item in decimal ("0" when the item was pruned).
	Deliveries []OutboxDelivery
}

// CopyStats counts what Copy did so far.
type CopyStats struct {
	// Subjects counts the subjects read, Written those written by this
	// run (the others were written by an earlier one).
	Subjects, Written int
	// Events counts the events read, receipts included; Receipts those.
	Events, Receipts int
}

// CopyBatch is how many subjects Copy reads and writes at a time.
const CopyBatch = 2000

// Copy copies the ledger of from into to, the copy named id (see
// Restorer.BeginRestore), calling progress, when not nil, after each
// batch. Run again after an interruption, it goes on where it stopped
// and ends with the same ledger in to. Errors wrap ErrNotEmpty (see
// BeginRestore) or the stores' errors.
func Copy(ctx context.Context, from Dumper, to Restorer, id string, progress func(CopyStats)) (CopyStats, error) {
	var st CopyStats
	if err := to.BeginRestore(ctx, id); err != nil {
		return st, err
	}
	outbox, err := from.Dump(ctx, CopyBatch, func(subjects []SubjectDump) error {
		n, err := to.RestoreSubjects(ctx, subjects)
		if err != nil {
			return fmt.Errorf("writing: %w", err)
		}
		st.Subjects += len(subjects)
		st.Written += n
		for _, s := range subjects {
			st.Events += len(s.Events) + len(s.Receipts)
			st.Receipts += len(s.Receipts)
		}
		if progress != nil {
			progress(st)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if err := to.EndRestore(ctx, outbox); err != nil {
		return st, fmt.Errorf("writing the log's order and the outbox: %w", err)
	}
	return st, nil
}

// RecordedAt returns the index in s.Events of the event that recorded
// the consent c, -1 when the chain lacks it.
func (s *SubjectDump) RecordedAt(c Consent) int {
	for i := len(s.Events) - 1; i >= 0; i-- {
		if s.Events[i].ID == c.EventID {
			return i
		}
	}
	return -1
}
