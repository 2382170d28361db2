package filestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// The outbox bucket is keyed by the global sequence of each event of a
// main chain (seqKey), so an item refers to its event by its own key; its
// value is when it was queued, 8-byte big-endian Unix nanoseconds by the
// store's clock, which PruneOutbox compares, and for a subject.erased
// event written with Notify the erasure notice after it. Positions are
// the sequence in decimal: they grow with every write.

// queue appends the event at seq to the outbox, in the transaction that
// appends it to its chain. notice, when not nil, is the erasure notice
// of a subject.erased event (optin.Erasure.Notify): it follows the time
// in the value, and goes when the item is pruned.
func (w *writer) queue(seq uint64, now time.Time, notice []byte) error {
	return w.outbox.Put(seqKey(seq), append(binary.BigEndian.AppendUint64(nil, uint64(max(now.UnixNano(), 0))), notice...))
}

// parsePos reads a position; "" is 0, before every item.
func parsePos(pos string) (uint64, error) {
	if pos == "" {
		return 0, nil
	}
	seq, err := strconv.ParseUint(pos, 10, 64)
	if err != nil || formatSeq(seq) != pos {
		return 0, fmt.Errorf("filestore: %w: outbox position %q", optin.ErrBadInput, pos)
	}
	return seq, nil
}

// OutboxRead returns up to limit items (optin.PageSize) after the
// position after, oldest first, each event opened. Next is the last
// item's position, after itself when there is none.
func (s *Store) OutboxRead(ctx context.Context, after string, limit int) (optin.OutboxPage, error) {
	from, err := parsePos(after)
	if err != nil {
		return optin.OutboxPage{}, err
	}
	limit = optin.PageSize(limit)
	page := optin.OutboxPage{Next: after}
	err = s.view(ctx, func(tx *bolt.Tx) error {
		if from == ^uint64(0) {
			return nil // nothing can follow
		}
		sc := &scan{s: s, tx: tx, subjects: map[string]*opened{}}
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.Seek(seqKey(from + 1)); k != nil && len(page.Items) < limit; k, v = c.Next() {
			it, err := sc.item(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			page.Items = append(page.Items, it)
			page.Next = it.Pos
		}
		return nil
	})
	if err != nil {
		return optin.OutboxPage{}, err
	}
	return page, nil
}

// OutboxEnd is the newest item's position, "" when the outbox is empty.
func (s *Store) OutboxEnd(ctx context.Context) (string, error) {
	pos := formatSeq(0) // before the first item: sequences start at 1
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketOutbox).Cursor().Last(); k != nil {
			pos = formatSeq(binary.BigEndian.Uint64(k))
		}
		return nil
	})
	return pos, err
}

// OutboxItem reads the item at pos; ErrNotFound when it was pruned (or
// never was).
func (s *Store) OutboxItem(ctx context.Context, pos string) (optin.OutboxItem, error) {
	seq, err := parsePos(pos)
	if err != nil {
		return optin.OutboxItem{}, err
	}
	var it optin.OutboxItem
	err = s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOutbox).Get(seqKey(seq))
		if v == nil {
			return fmt.Errorf("filestore: outbox item %s: %w", pos, optin.ErrNotFound)
		}
		var err error
		it, err = (&scan{s: s, tx: tx, subjects: map[string]*opened{}}).item(seq, v)
		return err
	})
	if err != nil {
		return optin.OutboxItem{}, err
	}
	return it, nil
}

// item opens the event at seq as an outbox item whose value is v, with
// the address of its erasure notice when it has one.
func (sc *scan) item(seq uint64, v []byte) (optin.OutboxItem, error) {
	se, err := loadEvent(sc.tx, seq)
	if err != nil {
		return optin.OutboxItem{}, err
	}
	o, err := sc.subject(se.SubjectID)
	if err != nil {
		return optin.OutboxItem{}, err
	}
	e, err := optin.Open(o.keyAt(seq), *se)
	if err != nil {
		return optin.OutboxItem{}, err
	}
	if len(v) > 8 && e.Erased {
		if err := sc.s.keys.FillNotice(&e, se.SubjectID, v[8:]); err != nil {
			return optin.OutboxItem{}, err
		}
	}
	return optin.OutboxItem{Pos: formatSeq(seq), SubjectID: se.SubjectID, Event: e}, nil
}
