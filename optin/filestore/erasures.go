package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// The erasures bucket indexes the scheduled erasures: 8-byte big-endian
// Unix nanoseconds of when one is due, then the subject id -> empty. It
// mirrors the records' ErasureAt, written in the same transaction.

func erasureKey(at int64, sid string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(max(at, 0))), sid...)
}

// schedule brings the index in line with the subject's scheduled
// erasure.
func (w *writer) schedule(sub *loaded) error {
	if sub.rec.ErasureAt == sub.erasureBefore {
		return nil
	}
	if sub.erasureBefore != 0 {
		if err := w.erasures.Delete(erasureKey(sub.erasureBefore, sub.sid)); err != nil {
			return err
		}
	}
	if sub.rec.ErasureAt != 0 {
		if err := w.erasures.Put(erasureKey(sub.rec.ErasureAt, sub.sid), nil); err != nil {
			return err
		}
	}
	sub.erasureBefore = sub.rec.ErasureAt
	return nil
}

// unmark deletes every delivery mark of subject sid, with their expiry
// index entries: an erasure leaves none.
func (w *writer) unmark(sid string) error {
	var gone [][]byte
	c := w.marks.Cursor()
	for k, v := c.Seek([]byte(sid)); k != nil && bytes.HasPrefix(k, []byte(sid)); k, v = c.Next() {
		if len(v) == 8 {
			gone = append(gone, expiryKey(int64(binary.BigEndian.Uint64(v)), bytes.Clone(k)))
		}
		gone = append(gone, bytes.Clone(k))
	}
	for _, k := range gone {
		if err := w.marks.Delete(k); err != nil {
			return err
		}
		if err := w.expiry.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// DueErasures reads the index of scheduled erasures up to now, the
// earliest first, and opens each subject's address.
func (s *Store) DueErasures(ctx context.Context, now time.Time, limit int) ([]optin.DueErasure, error) {
	limit = optin.PageSize(limit)
	edge := binary.BigEndian.AppendUint64(nil, uint64(max(now.UnixNano(), 0)))
	var out []optin.DueErasure
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketErasures).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit && len(k) > 8 && bytes.Compare(k[:8], edge) <= 0; k, _ = c.Next() {
			sid := string(k[8:])
			rec, err := loadRecord(tx, sid)
			if err != nil {
				return err
			}
			if rec == nil {
				continue
			}
			_, a, err := rec.open(s.keys, sid)
			if err != nil {
				return err
			}
			if a.IsZero() {
				continue // erased: nothing left to erase
			}
			out = append(out, optin.DueErasure{Subject: a, At: time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC()})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
