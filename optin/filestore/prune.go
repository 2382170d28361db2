package filestore

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PruneReceipts deletes, from the front of every receipt chain, the
// receipts older than before (their events and index entries), keeping
// in each record how many went and the last one's hash, so that the
// chain verifies from there. rotateChunk subjects per write transaction.
func (s *Store) PruneReceipts(ctx context.Context, before time.Time) (int, error) {
	pruned := 0
	err := s.eachChunk(ctx, func(tx *bolt.Tx, sid string, rec *record) (bool, error) {
		chain, events := tx.Bucket(bucketReceipts), tx.Bucket(bucketEvents)
		n := 0
		for rec.Pruned < rec.Receipts {
			seq, err := chainSeq(chain, sid, rec.Pruned)
			if err != nil {
				return false, err
			}
			e, err := loadEvent(tx, seq)
			if err != nil {
				return false, err
			}
			if !e.Time.Before(before) {
				break
			}
			if err := events.Delete(seqKey(seq)); err != nil {
				return false, err
			}
			if err := chain.Delete(chainKey(sid, rec.Pruned)); err != nil {
				return false, err
			}
			rec.Pruned++
			rec.PrunedHead = e.Hash
			n++
		}
		pruned += n
		return n > 0, nil
	}, nil)
	return pruned, err
}
