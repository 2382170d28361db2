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

// suppressionKey is the index key of one suppression: the address, a zero
// byte (which no address holds, so one address's entries are adjacent)
// and the reason.
func suppressionKey(addr string, reason optin.SuppressionReason) []byte {
	k := make([]byte, 0, len(addr)+1+len(reason))
	k = append(k, addr...)
	k = append(k, 0)
	return append(k, reason...)
}

// Suppressions pages through all suppressions in address order, then
// reason order. The cursor is the NextCursor of the page before, "" for
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
		for ; k != nil && len(page.Suppressions) < limit; k, v = c.Next() {
			sup, err := decodeSuppression(k, v)
			if err != nil {
				return err
			}
			page.Suppressions = append(page.Suppressions, sup)
			last = k
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

func decodeSuppression(k, v []byte) (optin.Suppression, error) {
	addr, reason, ok := bytes.Cut(k, []byte{0})
	if !ok || len(v) != 8 {
		return optin.Suppression{}, fmt.Errorf("%w: suppression index entry %q", optin.ErrCorrupt, k)
	}
	a, err := optin.ParseAddress(string(addr))
	if err != nil {
		return optin.Suppression{}, fmt.Errorf("%w: suppression index entry: %v", optin.ErrCorrupt, err)
	}
	return optin.Suppression{
		Subject:   a,
		Reason:    optin.SuppressionReason(reason),
		CreatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(),
	}, nil
}
