package filestore

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// Subjects pages through the subjects in subject id order, addresses
// opened; a subject without a key (erased) is not listed. The cursor is
// the last subject id listed, in base64.
func (s *Store) Subjects(ctx context.Context, cursor string, limit int) (optin.SubjectPage, error) {
	limit = optin.PageSize(limit)
	after, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return optin.SubjectPage{}, fmt.Errorf("filestore: %w: subject cursor %q", optin.ErrBadInput, cursor)
	}
	var page optin.SubjectPage
	err = s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSubjects).Cursor()
		k, v := c.First()
		if len(after) > 0 {
			if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		var last []byte
		for ; k != nil && len(page.Subjects) < limit; k, v = c.Next() {
			sid := string(k)
			last = k
			rec, err := decodeRecord(sid, v)
			if err != nil {
				return err
			}
			key, a, err := rec.open(s.keys, sid)
			if err != nil {
				return err
			}
			if key == nil || a.IsZero() {
				continue
			}
			view := optin.SubjectView{Address: a, Suppressions: suppressionsOf(rec, a)}
			if view.Consents, err = consentsOf(tx, rec, a, nil); err != nil {
				return err
			}
			page.Subjects = append(page.Subjects, view)
		}
		if k != nil {
			page.NextCursor = base64.RawURLEncoding.EncodeToString(last)
		}
		return nil
	})
	if err != nil {
		return optin.SubjectPage{}, err
	}
	return page, nil
}
