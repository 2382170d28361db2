package filestore

import (
	"bytes"
	"time"

	bolt "go.etcd.io/bbolt"
)

// outbox_saved keeps, per target, when it last saved records or a cursor
// (SaveDeliveries), 8-byte big-endian Unix nanoseconds by the store's
// clock: a live target's dispatcher saves at least that often, so one not
// seen since PruneOutbox's cut has stopped (its endpoint was removed from
// the configuration, say) and must not hold the outbox back.

// heldBack forgets the targets not seen since before (their cursor and
// sign of life; their records are pruned as any others) and returns the
// oldest cursor of the others: PruneOutbox deletes no item past it. A
// cursor with no sign of life (saved by a version that kept none) gets
// one now, so that its target has a whole retention to show up. With no
// cursor left it is the largest sequence: nothing is held back.
func heldBack(tx *bolt.Tx, before, now time.Time) (uint64, error) {
	cursors, saved := tx.Bucket(bucketOutboxCursors), tx.Bucket(bucketOutboxSaved)
	cut := createdKey(before)
	var stale, unknown [][]byte
	err := saved.ForEach(func(t, v []byte) error {
		if bytes.Compare(v, cut) < 0 {
			stale = append(stale, bytes.Clone(t))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, t := range stale {
		if err := cursors.Delete(t); err != nil {
			return 0, err
		}
		if err := saved.Delete(t); err != nil {
			return 0, err
		}
	}
	held := ^uint64(0)
	err = cursors.ForEach(func(t, v []byte) error {
		if saved.Get(t) == nil {
			unknown = append(unknown, bytes.Clone(t))
		}
		if seq, err := parsePos(string(v)); err == nil {
			held = min(held, seq)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, t := range unknown {
		if err := saved.Put(t, createdKey(now)); err != nil {
			return 0, err
		}
	}
	return held, nil
}
