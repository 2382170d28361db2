package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

var (
	_ optin.Dumper   = (*Store)(nil)
	_ optin.Restorer = (*Store)(nil)
)

// Dump reads the subjects in subject id order, batch per read
// transaction, and then the outbox in one. An event's Seq is its global
// sequence, which is the order Events lists.
func (s *Store) Dump(ctx context.Context, batch int, fn func([]optin.SubjectDump) error) (optin.OutboxDump, error) {
	var after []byte
	for {
		var page []optin.SubjectDump
		err := s.view(ctx, func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketSubjects).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(page) < batch; k, v = c.Next() {
				d, err := dumpSubject(tx, string(k), v)
				if err != nil {
					return err
				}
				page = append(page, d)
				after = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			return optin.OutboxDump{}, err
		}
		if len(page) == 0 {
			break
		}
		if err := fn(page); err != nil {
			return optin.OutboxDump{}, err
		}
	}
	var out optin.OutboxDump
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = dumpOutbox(tx)
		return err
	})
	return out, err
}

// dumpSubject reads one subject's record and both its chains.
func dumpSubject(tx *bolt.Tx, sid string, v []byte) (optin.SubjectDump, error) {
	r, err := decodeRecord(sid, v)
	if err != nil {
		return optin.SubjectDump{}, err
	}
	d := optin.SubjectDump{ID: sid, SealedAddress: r.Sealed, WrappedKey: r.Wrapped,
		Consents: make(map[string]optin.Consent, len(r.Consents)), Suppressions: make(map[optin.SuppressionReason]time.Time, len(r.Suppressions)),
		Pruned: int64(r.Pruned), PrunedHead: r.PrunedHead}
	for p := range r.Consents {
		c, err := r.consent(optin.Address{}, p)
		if err != nil {
			return optin.SubjectDump{}, fmt.Errorf("%w: subject %s: %v", optin.ErrCorrupt, sid, err)
		}
		d.Consents[p] = *c
	}
	for reason, ns := range r.Suppressions {
		d.Suppressions[reason] = time.Unix(0, ns).UTC()
	}
	if r.ErasureAt != 0 {
		d.ErasureAt = time.Unix(0, r.ErasureAt).UTC()
	}
	if d.Events, err = dumpChain(tx, tx.Bucket(bucketChains), sid, 0, r.Events); err != nil {
		return optin.SubjectDump{}, err
	}
	if d.Receipts, err = dumpChain(tx, tx.Bucket(bucketReceipts), sid, r.Pruned, r.Receipts); err != nil {
		return optin.SubjectDump{}, err
	}
	if r.KeyFrom != 0 {
		d.KeyFrom = [2]int64{firstFrom(d.Events, r.KeyFrom, 0), firstFrom(d.Receipts, r.KeyFrom, int64(r.Pruned))}
	}
	return d, nil
}

// dumpChain reads the events from to end of a subject's chain index b.
func dumpChain(tx *bolt.Tx, b *bolt.Bucket, sid string, from, end uint64) ([]optin.DumpedEvent, error) {
	if end < from {
		return nil, fmt.Errorf("%w: subject %s: %d receipts pruned of %d", optin.ErrCorrupt, sid, from, end)
	}
	out := make([]optin.DumpedEvent, 0, end-from)
	for i := from; i < end; i++ {
		seq, err := chainSeq(b, sid, i)
		if err != nil {
			return nil, err
		}
		e, err := loadEvent(tx, seq)
		if err != nil {
			return nil, err
		}
		out = append(out, optin.DumpedEvent{SealedEvent: *e, Seq: seq})
	}
	return out, nil
}

// firstFrom is the chain index (counted from base) of the first event at
// or after the global sequence seq: where a record's KeyFrom falls.
func firstFrom(events []optin.DumpedEvent, seq uint64, base int64) int64 {
	for i, e := range events {
		if e.Seq >= seq {
			return base + int64(i)
		}
	}
	return base + int64(len(events))
}

// dumpOutbox reads the items, every target's cursor and last save, and
// the delivery records.
func dumpOutbox(tx *bolt.Tx) (optin.OutboxDump, error) {
	var out optin.OutboxDump
	err := tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		if len(k) != 8 || len(v) < 8 {
			return fmt.Errorf("%w: outbox item %x", optin.ErrCorrupt, k)
		}
		it := optin.DumpedItem{Seq: binary.BigEndian.Uint64(k), Queued: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()}
		if len(v) > 8 {
			it.Notice = bytes.Clone(v[8:])
		}
		out.Items = append(out.Items, it)
		return nil
	})
	if err != nil {
		return out, err
	}
	targets := map[string]*optin.DumpedTarget{}
	var order []string
	target := func(name string) *optin.DumpedTarget {
		if t, ok := targets[name]; ok {
			return t
		}
		t := &optin.DumpedTarget{Name: name}
		targets[name] = t
		order = append(order, name)
		return t
	}
	err = tx.Bucket(bucketOutboxCursors).ForEach(func(k, v []byte) error {
		seq, err := parsePos(string(v))
		if err != nil {
			return fmt.Errorf("%w: cursor of %s: %v", optin.ErrCorrupt, k, err)
		}
		t := target(string(k))
		t.Cursor, t.HasCursor = seq, true
		return nil
	})
	if err != nil {
		return out, err
	}
	err = tx.Bucket(bucketOutboxSaved).ForEach(func(k, v []byte) error {
		if len(v) == 8 {
			target(string(k)).Saved = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	err = tx.Bucket(bucketOutboxDeliveries).ForEach(func(_, v []byte) error {
		d, err := decodeDelivery(v)
		if err != nil {
			return err
		}
		if _, err := parsePos(d.Pos); err != nil {
			d.Pos = "0"
		}
		t := target(d.Target)
		t.Deliveries = append(t.Deliveries, *d)
		return nil
	})
	for _, name := range order {
		out.Targets = append(out.Targets, *targets[name])
	}
	return out, err
}

// keyRestoring marks, in meta, a file that is the target of a copy
// (optin.Copy): its value is the copy's id.
var keyRestoring = []byte("restoring")

// BeginRestore refuses a file that holds subjects, outbox items or
// targets, unless it is the target of the copy id already.
func (s *Store) BeginRestore(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		switch mark := meta.Get(keyRestoring); {
		case mark != nil && string(mark) == id:
			return nil
		case mark != nil:
			return fmt.Errorf("%w: it is the target of another copy, from %s", optin.ErrNotEmpty, mark)
		}
		for _, b := range [][]byte{bucketSubjects, bucketOutbox, bucketOutboxCursors, bucketOutboxDeliveries} {
			if k, _ := tx.Bucket(b).Cursor().First(); k != nil {
				return fmt.Errorf("%w: it holds a ledger", optin.ErrNotEmpty)
			}
		}
		return meta.Put(keyRestoring, []byte(id))
	})
}

// RestoreSubjects writes the subjects whose records are not in the file
// yet, all in one write transaction: each event at its Seq as its global
// sequence, so the file lists the log in the source's order.
func (s *Store) RestoreSubjects(ctx context.Context, subjects []optin.SubjectDump) (int, error) {
	written := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		written = 0
		events := tx.Bucket(bucketEvents)
		top := events.Sequence()
		for i := range subjects {
			d := &subjects[i]
			if tx.Bucket(bucketSubjects).Get([]byte(d.ID)) != nil {
				continue
			}
			last, err := restoreSubject(tx, d)
			if err != nil {
				return err
			}
			top = max(top, last)
			written++
		}
		if top > events.Sequence() {
			return events.SetSequence(top) // appends go on after the copy
		}
		return nil
	})
	return written, err
}

// restoreSubject writes one subject and returns its highest Seq.
func restoreSubject(tx *bolt.Tx, d *optin.SubjectDump) (uint64, error) {
	r := &record{Sealed: d.SealedAddress, Wrapped: d.WrappedKey, Events: uint64(len(d.Events)),
		Pruned: uint64(d.Pruned), Receipts: uint64(d.Pruned) + uint64(len(d.Receipts)), PrunedHead: d.PrunedHead, ReceiptHead: d.PrunedHead,
		Consents: map[string]string{}, Recorded: map[string]uint64{}, Suppressions: map[optin.SuppressionReason]int64{}}
	var top uint64
	put := func(chain *bolt.Bucket, base uint64, es []optin.DumpedEvent) error {
		for i := range es {
			e := &es[i]
			if err := tx.Bucket(bucketEvents).Put(seqKey(e.Seq), encodeEvent(&e.SealedEvent)); err != nil {
				return err
			}
			if err := chain.Put(chainKey(d.ID, base+uint64(i)), seqKey(e.Seq)); err != nil {
				return err
			}
			top = max(top, e.Seq)
		}
		return nil
	}
	if err := put(tx.Bucket(bucketChains), 0, d.Events); err != nil {
		return 0, err
	}
	if err := put(tx.Bucket(bucketReceipts), r.Pruned, d.Receipts); err != nil {
		return 0, err
	}
	if n := len(d.Events); n > 0 {
		r.Head = d.Events[n-1].Hash
	}
	if n := len(d.Receipts); n > 0 {
		r.ReceiptHead = d.Receipts[n-1].Hash
	}
	if d.KeyFrom != [2]int64{} {
		r.KeyFrom = keyFromSeq(d)
	}
	for p, c := range d.Consents {
		r.Consents[p] = optin.EncodeConsent(c)
		if i := d.RecordedAt(c); i >= 0 {
			r.Recorded[p] = d.Events[i].Seq
		}
	}
	for reason, t := range d.Suppressions {
		r.Suppressions[reason] = t.UnixNano()
		if err := tx.Bucket(bucketSuppressions).Put(suppressionKey(d.ID, reason), binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))); err != nil {
			return 0, err
		}
	}
	if !d.ErasureAt.IsZero() {
		r.ErasureAt = d.ErasureAt.UnixNano()
		if err := tx.Bucket(bucketErasures).Put(erasureKey(r.ErasureAt, d.ID), nil); err != nil {
			return 0, err
		}
	}
	return top, putRecord(tx, d.ID, r)
}

// keyFromSeq turns a dump's KeyFrom into the global sequence a record
// keeps: that of the first event the subject key opens, in either chain.
func keyFromSeq(d *optin.SubjectDump) uint64 {
	var seq uint64
	if i := d.KeyFrom[0]; i < int64(len(d.Events)) {
		seq = d.Events[i].Seq
	}
	if i := d.KeyFrom[1] - d.Pruned; i >= 0 && i < int64(len(d.Receipts)) && (seq == 0 || d.Receipts[i].Seq < seq) {
		seq = d.Receipts[i].Seq
	}
	if seq == 0 {
		// No event is under the key yet: every later one will be.
		for _, es := range [][]optin.DumpedEvent{d.Events, d.Receipts} {
			if n := len(es); n > 0 {
				seq = max(seq, es[n-1].Seq+1)
			}
		}
	}
	return seq
}

// EndRestore writes the outbox's items, each target's records, cursor
// and last save, and takes the copy's mark away, in one write
// transaction.
func (s *Store) EndRestore(ctx context.Context, outbox optin.OutboxDump) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, it := range outbox.Items {
			v := append(binary.BigEndian.AppendUint64(nil, uint64(max(it.Queued.UnixNano(), 0))), it.Notice...)
			if err := b.Put(seqKey(it.Seq), v); err != nil {
				return err
			}
		}
		recs, index := tx.Bucket(bucketOutboxDeliveries), tx.Bucket(bucketOutboxIndex)
		for _, t := range outbox.Targets {
			if err := optin.CheckDeliveries(t.Name, t.Deliveries); err != nil {
				return fmt.Errorf("filestore: %w", err)
			}
			for i := range t.Deliveries {
				d := &t.Deliveries[i]
				if err := putDelivery(recs, index, d); err != nil {
					return err
				}
			}
			if t.HasCursor {
				if err := tx.Bucket(bucketOutboxCursors).Put([]byte(t.Name), []byte(strconv.FormatUint(t.Cursor, 10))); err != nil {
					return err
				}
			}
			if !t.Saved.IsZero() {
				if err := tx.Bucket(bucketOutboxSaved).Put([]byte(t.Name), createdKey(t.Saved)); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Delete(keyRestoring)
	})
}
