package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// The dedup marks of the inbound webhooks: seen maps a key to its until
// (8-byte big-endian Unix nanoseconds), seen_expiry indexes them by until
// (until + key, empty), as the delivery marks are.

// markPurge is how many expired dedup marks each Mark deletes: more than
// it adds, so the bucket holds about one window of marks.
const markPurge = 64

// Seen reports whether key has a mark whose until the store's clock has
// not reached.
func (s *Store) Seen(ctx context.Context, key string) (bool, error) {
	if err := optin.CheckMarkKey(key); err != nil {
		return false, fmt.Errorf("filestore: %w", err)
	}
	now := s.now().UnixNano()
	seen := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSeen).Get([]byte(key))
		seen = len(v) == 8 && now < int64(binary.BigEndian.Uint64(v))
		return nil
	})
	return seen, err
}

// Mark remembers key until until, replacing an earlier mark of it; a
// mark already past by the store's clock is not written. The write also
// deletes up to markPurge expired marks.
func (s *Store) Mark(ctx context.Context, key string, until time.Time) error {
	if err := optin.CheckMarkKey(key); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	now := s.now()
	return s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := purgeSeen(tx, now, markPurge); err != nil {
			return err
		}
		if !until.After(now) {
			return nil
		}
		marks, expiry := tx.Bucket(bucketSeen), tx.Bucket(bucketSeenExpiry)
		u := until.UnixNano()
		if old := marks.Get([]byte(key)); len(old) == 8 {
			if err := expiry.Delete(expiryKey(int64(binary.BigEndian.Uint64(old)), []byte(key))); err != nil {
				return err
			}
		}
		if err := marks.Put([]byte(key), binary.BigEndian.AppendUint64(nil, uint64(u))); err != nil {
			return err
		}
		return expiry.Put(expiryKey(u, []byte(key)), nil)
	})
}

// purgeSeen deletes up to limit dedup marks whose until is at or before
// now, oldest first, and returns how many.
func purgeSeen(tx *bolt.Tx, now time.Time, limit int) (int, error) {
	marks, expiry := tx.Bucket(bucketSeen), tx.Bucket(bucketSeenExpiry)
	edge := binary.BigEndian.AppendUint64(nil, uint64(max(now.UnixNano(), 0)))
	var gone [][]byte
	c := expiry.Cursor()
	for k, _ := c.First(); k != nil && len(gone) < limit && len(k) >= 8 && bytes.Compare(k[:8], edge) <= 0; k, _ = c.Next() {
		gone = append(gone, bytes.Clone(k))
	}
	for _, k := range gone {
		if err := expiry.Delete(k); err != nil {
			return 0, err
		}
		if v := marks.Get(k[8:]); v != nil && bytes.Equal(v, k[:8]) {
			if err := marks.Delete(k[8:]); err != nil {
				return 0, err
			}
		}
	}
	return len(gone), nil
}
