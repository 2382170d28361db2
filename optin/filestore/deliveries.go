package filestore

import (
	"bytes"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

const (
	// purgeEvery is how often a write transaction also purges expired
	// delivery marks.
	purgeEvery = time.Minute
	// purgeMax caps the marks one purge deletes, so that it never holds
	// up a write for long; when it hits the cap, the next write purges
	// again.
	purgeMax = 5000
)

// markKey is a mark's key in the deliveries bucket: the subject id and
// the message hash.
func markKey(sid string, hash []byte) []byte {
	return append([]byte(sid), hash...)
}

// expiryKey is a mark's key in the expiry index: its until (8-byte
// big-endian Unix nanoseconds, so the index is in time order) and its
// mark key.
func expiryKey(until int64, mark []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(until)), mark...)
}

// mark records that the message went to subject sid until until, and
// moves its expiry index entry when it replaces an earlier mark. A mark
// already past by now is not written.
func (w *writer) mark(sid string, d *optin.Delivery, now time.Time) error {
	until := d.Until.UnixNano()
	if !d.Until.After(now) || until <= 0 {
		return nil
	}
	key := markKey(sid, optin.MessageHash(d.Message))
	if old := w.marks.Get(key); len(old) == 8 {
		prev := int64(binary.BigEndian.Uint64(old))
		if prev == until {
			return nil
		}
		if err := w.expiry.Delete(expiryKey(prev, key)); err != nil {
			return err
		}
	}
	if err := w.marks.Put(key, binary.BigEndian.AppendUint64(nil, uint64(until))); err != nil {
		return err
	}
	return w.expiry.Put(expiryKey(until, key), nil)
}

// delivered reports whether subject sid has a mark for hash that now has
// not passed.
func delivered(marks *bolt.Bucket, sid string, hash []byte, now time.Time) bool {
	v := marks.Get(markKey(sid, hash))
	return len(v) == 8 && now.UnixNano() < int64(binary.BigEndian.Uint64(v))
}

// purge deletes expired marks when the last purge is purgeEvery ago (or
// hit its cap). Only write transactions call it, one at a time; should
// the transaction roll back, the marks wait for the next purge.
func (s *Store) purge(tx *bolt.Tx, now time.Time) error {
	if now.UnixNano() < s.nextPurge.Load() {
		return nil
	}
	n, err := purgeMarks(tx, now, purgeMax)
	if err != nil {
		return err
	}
	next := now.Add(purgeEvery)
	if n == purgeMax {
		next = now // more to do: again on the next write
	}
	s.nextPurge.Store(next.UnixNano())
	return nil
}

// purgeMarks deletes up to limit marks whose until is at or before now,
// oldest first, with their expiry index entries, and returns how many it
// deleted.
func purgeMarks(tx *bolt.Tx, now time.Time, limit int) (int, error) {
	marks, expiry := tx.Bucket(bucketDeliveries), tx.Bucket(bucketDeliveryExpiry)
	edge := binary.BigEndian.AppendUint64(nil, uint64(max(now.UnixNano(), 0)))
	var gone [][]byte
	c := expiry.Cursor()
	for k, _ := c.First(); k != nil && len(gone) < limit && len(k) >= 8 && bytes.Compare(k[:8], edge) <= 0; k, _ = c.Next() {
		gone = append(gone, bytes.Clone(k)) // a bbolt cursor may skip keys deleted under it
	}
	for _, k := range gone {
		if err := expiry.Delete(k); err != nil {
			return 0, err
		}
		mark := k[8:]
		if v := marks.Get(mark); v != nil && bytes.Equal(v, k[:8]) {
			if err := marks.Delete(mark); err != nil {
				return 0, err
			}
		}
	}
	return len(gone), nil
}
