package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// pruneChunk caps what one write transaction of PruneOutbox deletes, so
// that the relay's writes are not held up behind it.
const pruneChunk = 1000

// PruneOutbox deletes the dead and retired records done before before
// (a record without DoneAt counts from its Created); then it forgets the
// cursor of each target that has not saved since before and deletes the
// outbox items queued before before that every cursor left has passed (a
// target without a cursor holds nothing back); then the expired dedup
// marks; pruneChunk per write transaction. It returns how many records
// and items went. Pending records stay.
func (s *Store) PruneOutbox(ctx context.Context, before time.Time) (int, error) {
	n := 0
	for _, st := range []optin.DeliveryStatus{optin.DeliveryDead, optin.DeliveryRetired} {
		var from []byte
		for {
			gone, next, err := s.pruneRecords(ctx, st, from, before)
			n += gone
			if err != nil || next == nil {
				if err != nil {
					return n, err
				}
				break
			}
			from = next
		}
	}
	for {
		gone, err := s.pruneItems(ctx, before)
		n += gone
		if err != nil || gone < pruneChunk {
			if err != nil {
				return n, err
			}
			break
		}
	}
	for {
		var gone int
		err := s.update(ctx, func(tx *bolt.Tx) (err error) {
			gone, err = purgeSeen(tx, s.now(), pruneChunk)
			return err
		})
		if err != nil || gone < pruneChunk {
			return n, err
		}
	}
}

// pruneRecords deletes, of the records of status st created before
// before, from the index key from on, those done before before, looking
// at pruneChunk of them; it returns how many it deleted and where to go
// on (nil at the end).
func (s *Store) pruneRecords(ctx context.Context, st optin.DeliveryStatus, from []byte, before time.Time) (int, []byte, error) {
	prefix := []byte{'A', statusByte(st)}
	end := append(append([]byte{}, prefix...), createdKey(before)...)
	if from == nil {
		from = prefix
	}
	gone := 0
	var next []byte
	err := s.update(ctx, func(tx *bolt.Tx) error {
		gone, next = 0, nil
		recs, index := tx.Bucket(bucketOutboxDeliveries), tx.Bucket(bucketOutboxIndex)
		var drop []*optin.OutboxDelivery
		c := index.Cursor()
		seen := 0
		for k, _ := c.Seek(from); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Next() {
			if seen == pruneChunk {
				next = bytes.Clone(k)
				break
			}
			seen++
			v := recs.Get(k[2+8:])
			if v == nil {
				continue
			}
			d, err := decodeDelivery(v)
			if err != nil {
				return err
			}
			done := d.DoneAt
			if done.IsZero() {
				done = d.Created
			}
			if done.Before(before) {
				drop = append(drop, d)
			}
		}
		for _, d := range drop {
			all, one := indexKeys(d)
			for _, err := range []error{index.Delete(all), index.Delete(one), recs.Delete(recordKey(d.Target, d.EventID))} {
				if err != nil {
					return err
				}
			}
		}
		gone = len(drop)
		return nil
	})
	return gone, next, err
}

// pruneItems forgets the targets not seen since before (heldBack) and
// deletes up to pruneChunk outbox items, oldest first, while they were
// queued before before and every cursor left has passed them.
func (s *Store) pruneItems(ctx context.Context, before time.Time) (int, error) {
	gone := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		gone = 0
		held, err := heldBack(tx, before, s.now())
		if err != nil {
			return err
		}
		ob := tx.Bucket(bucketOutbox)
		edge := uint64(max(before.UnixNano(), 0))
		var drop [][]byte
		c := ob.Cursor()
		for k, v := c.First(); k != nil && len(drop) < pruneChunk; k, v = c.Next() {
			if binary.BigEndian.Uint64(k) > held || len(v) < 8 || binary.BigEndian.Uint64(v) >= edge {
				break
			}
			drop = append(drop, bytes.Clone(k))
		}
		for _, k := range drop {
			if err := ob.Delete(k); err != nil {
				return err
			}
		}
		gone = len(drop)
		return nil
	})
	return gone, err
}
