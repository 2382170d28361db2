package filestore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// Delivery records live in outbox_deliveries under target + 0x00 +
// event id, as JSON (they hold no personal data). outbox_index files each
// record twice, both keys empty-valued:
//
//	'A' status created target 0x00 eventID   all targets, oldest first
//	'T' target 0x00 status created eventID   one target, oldest first
//
// with status one byte (statusByte) and created 8-byte big-endian Unix
// nanoseconds. Delivery cursors are base64 of created, target, 0x00 and
// the event id of the last record given.

// statusByte is a status's byte in the index.
func statusByte(st optin.DeliveryStatus) byte {
	switch st {
	case optin.DeliveryDead:
		return 'd'
	case optin.DeliveryRetired:
		return 'r'
	}
	return 'p'
}

// createdKey is a record's Created in the index: Unix nanoseconds, 0
// for times before 1970.
func createdKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(max(t.UnixNano(), 0)))
}

func recordKey(target, eventID string) []byte {
	return []byte(target + "\x00" + eventID)
}

// indexKeys are d's two keys in outbox_index.
func indexKeys(d *optin.OutboxDelivery) (all, one []byte) {
	st, created := statusByte(d.Status), createdKey(d.Created)
	all = append(append([]byte{'A', st}, created...), recordKey(d.Target, d.EventID)...)
	one = append(append(append([]byte{'T'}, d.Target+"\x00"...), st), created...)
	return all, append(one, d.EventID...)
}

// OutboxCursor is where target took its last item; ErrNotFound when it
// never saved one.
func (s *Store) OutboxCursor(ctx context.Context, target string) (string, error) {
	if err := optin.CheckTarget(target); err != nil {
		return "", fmt.Errorf("filestore: %w", err)
	}
	var cursor string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOutboxCursors).Get([]byte(target))
		if v == nil {
			return fmt.Errorf("filestore: outbox cursor of %s: %w", target, optin.ErrNotFound)
		}
		cursor = string(v)
		return nil
	})
	return cursor, err
}

// SaveDeliveries stores ds, each replacing the record with its event id
// (and moving it between the status indexes), moves target's cursor to
// cursor unless it is "", and notes when target saved (its sign of life
// for PruneOutbox), in one write transaction.
func (s *Store) SaveDeliveries(ctx context.Context, target string, ds []optin.OutboxDelivery, cursor string) error {
	if err := optin.CheckDeliveries(target, ds); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if _, err := parsePos(cursor); err != nil {
		return err
	}
	if len(ds) == 0 && cursor == "" {
		return s.usable(ctx)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketOutboxSaved).Put([]byte(target), createdKey(s.now())); err != nil {
			return err
		}
		recs, index := tx.Bucket(bucketOutboxDeliveries), tx.Bucket(bucketOutboxIndex)
		for i := range ds {
			if err := putDelivery(recs, index, &ds[i]); err != nil {
				return fmt.Errorf("delivery %d: %w", i, err)
			}
		}
		if cursor == "" {
			return nil
		}
		return tx.Bucket(bucketOutboxCursors).Put([]byte(target), []byte(cursor))
	})
}

// putDelivery stores d, replacing the record with its event id and its
// index entries.
func putDelivery(recs, index *bolt.Bucket, d *optin.OutboxDelivery) error {
	key := recordKey(d.Target, d.EventID)
	if old := recs.Get(key); old != nil {
		prev, err := decodeDelivery(old)
		if err != nil {
			return err
		}
		all, one := indexKeys(prev)
		if err := index.Delete(all); err != nil {
			return err
		}
		if err := index.Delete(one); err != nil {
			return err
		}
	}
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("%w: %v", optin.ErrBadInput, err)
	}
	if err := recs.Put(key, v); err != nil {
		return err
	}
	all, one := indexKeys(d)
	if err := index.Put(all, nil); err != nil {
		return err
	}
	return index.Put(one, nil)
}

func decodeDelivery(v []byte) (*optin.OutboxDelivery, error) {
	var d optin.OutboxDelivery
	if err := json.Unmarshal(v, &d); err != nil {
		return nil, fmt.Errorf("%w: outbox delivery: %v", optin.ErrCorrupt, err)
	}
	return &d, nil
}

// Delivery reads target's record of eventID; ErrNotFound when there is
// none.
func (s *Store) Delivery(ctx context.Context, target, eventID string) (optin.OutboxDelivery, error) {
	if err := optin.CheckTarget(target); err != nil {
		return optin.OutboxDelivery{}, fmt.Errorf("filestore: %w", err)
	}
	var d *optin.OutboxDelivery
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOutboxDeliveries).Get(recordKey(target, eventID))
		if v == nil {
			return fmt.Errorf("filestore: delivery %s of %s: %w", eventID, target, optin.ErrNotFound)
		}
		var err error
		d, err = decodeDelivery(v)
		return err
	})
	if err != nil {
		return optin.OutboxDelivery{}, err
	}
	return *d, nil
}

// Deliveries pages through the records of q.Status, oldest Created first
// (then by target and event id), of q.Target or of all targets. A cursor
// that does not decode is an error wrapping optin.ErrBadInput.
func (s *Store) Deliveries(ctx context.Context, q optin.DeliveryQuery) (optin.DeliveryPage, error) {
	if !q.Status.Valid() {
		return optin.DeliveryPage{}, fmt.Errorf("filestore: %w: delivery status %q", optin.ErrBadInput, q.Status)
	}
	if q.Target != "" {
		if err := optin.CheckTarget(q.Target); err != nil {
			return optin.DeliveryPage{}, fmt.Errorf("filestore: %w", err)
		}
	}
	limit := optin.PageSize(q.Limit)
	st := statusByte(q.Status)
	prefix := []byte{'A', st}
	if q.Target != "" {
		prefix = append(append([]byte{'T'}, q.Target+"\x00"...), st)
	}
	from := prefix
	if q.Cursor != "" {
		created, target, eventID, err := decodeDeliveryCursor(q.Cursor)
		if err != nil {
			return optin.DeliveryPage{}, err
		}
		from = append(append([]byte{}, prefix...), created...)
		if q.Target == "" {
			from = append(from, recordKey(target, eventID)...)
		} else {
			from = append(from, eventID...)
		}
	}
	var page optin.DeliveryPage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketOutboxDeliveries)
		c := tx.Bucket(bucketOutboxIndex).Cursor()
		k, _ := c.Seek(from)
		if q.Cursor != "" && bytes.Equal(k, from) {
			k, _ = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(page.Deliveries) == limit {
				last := page.Deliveries[limit-1]
				page.NextCursor = deliveryCursor(&last)
				return nil
			}
			rest := k[len(prefix):]
			if len(rest) < 8 {
				return fmt.Errorf("%w: outbox index key %q", optin.ErrCorrupt, k)
			}
			var key []byte
			if q.Target == "" {
				key = rest[8:]
			} else {
				key = recordKey(q.Target, string(rest[8:]))
			}
			v := recs.Get(key)
			if v == nil {
				return fmt.Errorf("%w: outbox index names a delivery that is missing", optin.ErrCorrupt)
			}
			d, err := decodeDelivery(v)
			if err != nil {
				return err
			}
			page.Deliveries = append(page.Deliveries, *d)
		}
		return nil
	})
	if err != nil {
		return optin.DeliveryPage{}, err
	}
	return page, nil
}

func deliveryCursor(d *optin.OutboxDelivery) string {
	return base64.RawURLEncoding.EncodeToString(append(createdKey(d.Created), recordKey(d.Target, d.EventID)...))
}

func decodeDeliveryCursor(c string) (created []byte, target, eventID string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && len(raw) > 8 {
		if t, id, ok := bytes.Cut(raw[8:], []byte{0}); ok {
			return raw[:8], string(t), string(id), nil
		}
	}
	return nil, "", "", fmt.Errorf("filestore: %w: delivery cursor %q", optin.ErrBadInput, c)
}
