package filestore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// suppressionKey is the index key of one suppression: the subject id, a
// zero byte and the reason.
func suppressionKey(sid string, reason optin.SuppressionReason) []byte {
	k := make([]byte, 0, len(sid)+1+len(reason))
	k = append(k, sid...)
	k = append(k, 0)
	return append(k, reason...)
}

// Suppressions pages through all suppressions in subject id order, then
// reason order, with each subject's address opened. The cursor is the NextCursor of the page before, "" for
// the first page; a cursor that does not decode is an error wrapping
// optin.ErrBadInput.
func (s *Store) Suppressions(ctx context.Context, cursor string, limit int) (optin.SuppressionPage, error) {
	limit = optin.PageSize(limit)
	var after []byte
	if cursor != "" {
		var err error
		if after, err = base64.RawURLEncoding.DecodeString(cursor); err != nil || len(after) == 0 {
			return optin.SuppressionPage{}, fmt.Errorf("filestore: %w: suppression cursor %q", optin.ErrBadInput, cursor)
		}
	}
	var page optin.SuppressionPage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSuppressions).Cursor()
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		var last []byte
		addrs := map[string]optin.Address{}
		for ; k != nil && len(page.Suppressions) < limit; k, v = c.Next() {
			sup, sid, err := decodeSuppression(k, v)
			if err != nil {
				return err
			}
			last = k
			a, ok := addrs[sid]
			if !ok {
				rec, err := loadRecord(tx, sid)
				if err != nil || rec == nil {
					return fmt.Errorf("%w: suppression of unknown subject %s (%v)", optin.ErrCorrupt, sid, err)
				}
				if _, a, err = rec.open(s.keys, sid); err != nil {
					return err
				}
				addrs[sid] = a
			}
			if a.IsZero() {
				continue // erased: nothing to name
			}
			sup.Subject = a
			page.Suppressions = append(page.Suppressions, sup)
		}
		if k != nil {
			page.NextCursor = base64.RawURLEncoding.EncodeToString(last)
		}
		return nil
	})
	if err != nil {
		return optin.SuppressionPage{}, err
	}
	return page, nil
}

func decodeSuppression(k, v []byte) (optin.Suppression, string, error) {
	sid, reason, ok := bytes.Cut(k, []byte{0})
	if !ok || len(v) != 8 {
		return optin.Suppression{}, "", fmt.Errorf("%w: suppression index entry %q", optin.ErrCorrupt, k)
	}
	return optin.Suppression{
		Reason:    optin.SuppressionReason(reason),
		CreatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(),
	}, string(sid), nil
}
