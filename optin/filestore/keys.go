package filestore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// rotateChunk is how many subjects one write transaction of Rotate
// re-wraps, so that the relay's writes wait for it only briefly.
const rotateChunk = 500

// Rotate re-wraps, under the newest generation of the ledger key, every
// subject key wrapped under another, rotateChunk subjects per write
// transaction, between the other writers' transactions.
func (s *Store) Rotate(ctx context.Context, progress func(int)) (int, error) {
	ring := s.keys.Get()
	done := 0
	err := s.eachChunk(ctx, func(tx *bolt.Tx, sid string, rec *record) (bool, error) {
		if rec.Wrapped == nil {
			return false, nil
		}
		if g, ok := optin.WrapGeneration(rec.Wrapped); ok && g == ring.Newest() {
			return false, nil
		}
		key, err := s.keys.Unwrap(sid, rec.Wrapped)
		if err != nil {
			return false, err
		}
		rec.Wrapped = ring.Wrap(sid, key)
		done++
		return true, nil
	}, func() {
		if progress != nil {
			progress(done)
		}
	})
	return done, err
}

// eachChunk calls fn for every subject, rotateChunk per write
// transaction, and writes back the records fn changed (it returns true);
// after each transaction it calls after.
func (s *Store) eachChunk(ctx context.Context, fn func(tx *bolt.Tx, sid string, rec *record) (bool, error), after func()) error {
	var from []byte
	for {
		more := false
		err := s.update(ctx, func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketSubjects).Cursor()
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
				if k != nil && bytes.Equal(k, from) {
					k, v = c.Next()
				}
			}
			type change struct {
				sid string
				rec *record
			}
			var changed []change
			for n := 0; k != nil; k, v = c.Next() {
				if n == rotateChunk {
					more = true
					break
				}
				sid := string(k)
				rec, err := decodeRecord(sid, v)
				if err != nil {
					return err
				}
				write, err := fn(tx, sid, rec)
				if err != nil {
					return err
				}
				if write {
					changed = append(changed, change{sid, rec})
				}
				from = bytes.Clone(k)
				n++
			}
			for _, ch := range changed {
				if err := putRecord(tx, ch.sid, ch.rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if after != nil {
			after()
		}
		if !more {
			return nil
		}
	}
}

// KeyUse counts the wrapped subject keys per generation.
func (s *Store) KeyUse(ctx context.Context) (map[uint32]int, error) {
	use := map[uint32]int{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubjects).ForEach(func(k, v []byte) error {
			rec, err := decodeRecord(string(k), v)
			if err != nil || rec.Wrapped == nil {
				return err
			}
			g, ok := optin.WrapGeneration(rec.Wrapped)
			if !ok {
				return fmt.Errorf("%w: subject %s: wrapped key of %d bytes", optin.ErrCorrupt, k, len(rec.Wrapped))
			}
			use[g]++
			return nil
		})
	})
	return use, err
}

// Lease is always this instance's: one process holds the file.
func (s *Store) Lease(ctx context.Context, job string, ttl time.Duration) (bool, error) {
	return s.usable(ctx) == nil, s.usable(ctx)
}
