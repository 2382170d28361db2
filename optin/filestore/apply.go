package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// Apply applies changes in order in one write transaction: all of them
// are committed and synced to disk together, or none is. Each subject is
// loaded once per call. A change without a subject address fails the
// whole call with an error wrapping optin.ErrBadAddress, one whose
// Delivered lacks its Message or Until with one wrapping
// optin.ErrBadInput, before anything is written.
//
// A change's Delivered mark is written when the change is applied,
// whatever its kind (a message receipt, as a rule), and not when it is
// ignored; a mark whose Until has passed is not written. A mark replaces
// the subject's earlier one for the same message. Now and then (see
// purgeEvery) the transaction also deletes marks past their Until.
func (s *Store) Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error) {
	for i, ch := range changes {
		if ch.Subject.IsZero() {
			return nil, fmt.Errorf("filestore: change %d: %w: no subject", i, optin.ErrBadAddress)
		}
		if err := ch.Delivered.Check(); err != nil {
			return nil, fmt.Errorf("filestore: change %d: %w", i, err)
		}
	}
	if len(changes) == 0 {
		return nil, s.usable(ctx)
	}
	results := make([]optin.Result, len(changes))
	err := s.update(ctx, func(tx *bolt.Tx) error {
		w := newWriter(tx, s.keys)
		for i, ch := range changes {
			if i%256 == 255 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			res, err := w.apply(ch, s.now())
			if err != nil {
				return fmt.Errorf("change %d: %w", i, err)
			}
			results[i] = res
		}
		if err := w.flush(); err != nil {
			return err
		}
		return s.purge(tx, s.now())
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// writer applies one batch inside a write transaction.
type writer struct {
	tx                             *bolt.Tx
	keys                           *optin.Keys
	ring                           *optin.Keyring
	events, chains, receipts, supp *bolt.Bucket
	marks, expiry                  *bolt.Bucket
	outbox, erasures               *bolt.Bucket
	subjects                       map[string]*loaded
	order                          []*loaded // first-load order, so writes are deterministic
}

// loaded is one subject of the batch: its record and state as loaded and
// as changed.
type loaded struct {
	sid        string
	rec        *record
	st         *optin.SubjectState
	suppBefore map[optin.SuppressionReason]int64
	// erasureBefore is the scheduled erasure as loaded (Unix ns, 0 for
	// none), for the index of the scheduled ones.
	erasureBefore int64
	dirty         bool
}

func newWriter(tx *bolt.Tx, keys *optin.Keys) *writer {
	w := &writer{
		tx: tx, keys: keys, ring: keys.Get(),
		events: tx.Bucket(bucketEvents), chains: tx.Bucket(bucketChains), receipts: tx.Bucket(bucketReceipts),
		supp: tx.Bucket(bucketSuppressions), marks: tx.Bucket(bucketDeliveries), expiry: tx.Bucket(bucketDeliveryExpiry),
		outbox: tx.Bucket(bucketOutbox), erasures: tx.Bucket(bucketErasures),
		subjects: map[string]*loaded{},
	}
	// Event keys only grow: fill pages completely instead of splitting
	// them in half.
	w.events.FillPercent = 1
	w.outbox.FillPercent = 1
	return w
}

func (w *writer) apply(ch optin.Change, now time.Time) (optin.Result, error) {
	sub, err := w.load(ch.Subject)
	if err != nil {
		return optin.Result{}, err
	}
	if ch.Once {
		if held, err := w.holds(sub, ch.Event); held || err != nil {
			return optin.Result{}, err // a replay of what is there
		}
	}
	hadKey := sub.st.Key != nil
	sealed, res, err := sub.st.Apply(ch, now)
	if errors.Is(err, optin.ErrErased) {
		res.Refused = err
		return res, nil // refused by the rules: the batch goes on
	}
	if err != nil || sealed == nil {
		return res, err
	}
	first := sub.rec.Events+sub.rec.Receipts == 0
	seq, err := w.append(sub, sealed)
	if err != nil {
		return res, err
	}
	switch haveKey := sub.st.Key != nil; {
	case hadKey && !haveKey:
		// Erased: the key and the sealed address go in this write.
		sub.rec.Wrapped, sub.rec.Sealed = nil, nil
		if err := w.unmark(sub.sid); err != nil {
			return res, err
		}
	case !hadKey && haveKey && !first:
		// The subject came back after an erasure: a fresh key, which
		// opens the events from this one on.
		sub.rec.KeyFrom = seq
	}
	if !sealed.Receipt {
		var notice []byte
		if er := ch.Erasure; er != nil && er.Op == optin.EraseNow && er.Notify {
			notice = w.ring.SealNotice(sub.sid, sealed.ID, ch.Subject)
		}
		if err := w.queue(seq, now, notice); err != nil {
			return res, err
		}
	}
	if ch.Consent != nil {
		if sub.rec.Recorded == nil {
			sub.rec.Recorded = map[string]uint64{}
		}
		sub.rec.Recorded[ch.Consent.Purpose] = seq
	}
	if ch.Delivered != nil {
		if err := w.mark(sub.sid, ch.Delivered, now); err != nil {
			return res, err
		}
	}
	sub.dirty = true
	return res, nil
}

func (w *writer) load(a optin.Address) (*loaded, error) {
	sid := w.ring.SubjectID(a)
	if sub, ok := w.subjects[sid]; ok {
		return sub, nil
	}
	rec, err := loadRecord(w.tx, sid)
	if err != nil {
		return nil, err
	}
	sub := &loaded{sid: sid}
	if rec == nil {
		sub.rec = &record{}
		sub.st = optin.NewSubjectState(sid, a)
	} else {
		sub.rec = rec
		sub.suppBefore = maps.Clone(rec.Suppressions)
		sub.erasureBefore = rec.ErasureAt
		var key []byte
		if rec.Wrapped != nil {
			if key, err = w.keys.Unwrap(sid, rec.Wrapped); err != nil {
				return nil, err
			}
		}
		if sub.st, err = rec.state(sid, a, key); err != nil {
			return nil, err
		}
	}
	w.subjects[sid] = sub
	w.order = append(w.order, sub)
	return sub, nil
}

// append stores a sealed event at the next global sequence and links it
// into the subject's main or receipt chain.
func (w *writer) append(sub *loaded, e *optin.SealedEvent) (uint64, error) {
	seq, err := w.events.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := w.events.Put(seqKey(seq), encodeEvent(e)); err != nil {
		return 0, err
	}
	chain, n := w.chains, &sub.rec.Events
	if e.Receipt {
		chain, n = w.receipts, &sub.rec.Receipts
	}
	if err := chain.Put(chainKey(sub.sid, *n), seqKey(seq)); err != nil {
		return 0, err
	}
	*n++
	return seq, nil
}

// holds reports whether the subject's chain of e's kind holds an event
// with e's id (a replay).
func (w *writer) holds(sub *loaded, e optin.Event) (bool, error) {
	chain, from, to := w.chains, uint64(0), sub.rec.Events
	if e.Type.IsReceipt() {
		chain, from, to = w.receipts, sub.rec.Pruned, sub.rec.Receipts
	}
	for i := to; i > from; i-- {
		v := chain.Get(chainKey(sub.sid, i-1))
		if len(v) != 8 {
			return false, fmt.Errorf("%w: subject %s: event %d of its chain is missing", optin.ErrCorrupt, sub.sid, i-1)
		}
		se, err := loadEvent(w.tx, binary.BigEndian.Uint64(v))
		if err != nil {
			return false, err
		}
		if se.ID == e.ID {
			return true, nil
		}
	}
	return false, nil
}

// flush writes the changed subjects' records and their suppression index
// entries.
func (w *writer) flush() error {
	for _, sub := range w.order {
		if !sub.dirty {
			continue
		}
		sub.rec.update(w.ring, sub.st)
		if err := putRecord(w.tx, sub.sid, sub.rec); err != nil {
			return err
		}
		if err := w.index(sub); err != nil {
			return err
		}
		if err := w.schedule(sub); err != nil {
			return err
		}
	}
	return nil
}

// index brings the suppression index in line with the subject's record.
func (w *writer) index(sub *loaded) error {
	for reason := range sub.suppBefore {
		if _, still := sub.rec.Suppressions[reason]; still {
			continue
		}
		if err := w.supp.Delete(suppressionKey(sub.sid, reason)); err != nil {
			return err
		}
	}
	for reason, t := range sub.rec.Suppressions {
		if old, had := sub.suppBefore[reason]; had && old == t {
			continue
		}
		if err := w.supp.Put(suppressionKey(sub.sid, reason), binary.BigEndian.AppendUint64(nil, uint64(t))); err != nil {
			return err
		}
	}
	return nil
}
