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
// store's clock, which PruneOutbox compares. Positions are the sequence
// in decimal: they grow with every write.

// queue appends the event at seq to the outbox, in the transaction that
// appends it to its chain.
func (w *writer) queue(seq uint64, now time.Time) error {
	return w.outbox.Put(seqKey(seq), binary.BigEndian.AppendUint64(nil, uint64(max(now.UnixNano(), 0))))
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
		for k, _ := c.Seek(seqKey(from + 1)); k != nil && len(page.Items) < limit; k, _ = c.Next() {
			it, err := sc.item(binary.BigEndian.Uint64(k))
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
		if tx.Bucket(bucketOutbox).Get(seqKey(seq)) == nil {
			return fmt.Errorf("filestore: outbox item %s: %w", pos, optin.ErrNotFound)
		}
		var err error
		it, err = (&scan{s: s, tx: tx, subjects: map[string]*opened{}}).item(seq)
		return err
	})
	if err != nil {
		return optin.OutboxItem{}, err
	}
	return it, nil
}

// item opens the event at seq as an outbox item.
func (sc *scan) item(seq uint64) (optin.OutboxItem, error) {
	se, err := loadEvent(sc.tx, seq)
	if err != nil {
		return optin.OutboxItem{}, err
	}
	o, err := sc.subject(se.SubjectID)
	if err != nil {
		return optin.OutboxItem{}, err
	}
	e, err := optin.Open(o.key, *se)
	if err != nil {
		return optin.OutboxItem{}, err
	}
	return optin.OutboxItem{Pos: formatSeq(seq), SubjectID: se.SubjectID, Event: e}, nil
}
