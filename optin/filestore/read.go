package filestore

import (
	"context"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// Subject returns what is stored about a: its consents by purpose name,
// each with the evidence of its recording event, its suppressions oldest
// first, and its last recent events of both chains merged by time, oldest
// first (recent is capped at optin.MaxPageSize). ErrNotFound when nothing
// is stored.
func (s *Store) Subject(ctx context.Context, a optin.Address, recent int) (*optin.SubjectView, error) {
	if a.IsZero() {
		return nil, fmt.Errorf("filestore: %w: no subject", optin.ErrBadAddress)
	}
	recent = min(max(recent, 0), optin.MaxPageSize)
	sid := s.keys.Get().SubjectID(a)
	var view *optin.SubjectView
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rec, err := loadRecord(tx, sid)
		if err != nil {
			return err
		}
		if rec == nil {
			return fmt.Errorf("filestore: subject: %w", optin.ErrNotFound)
		}
		var key []byte
		if rec.Wrapped != nil {
			if key, err = s.keys.Unwrap(sid, rec.Wrapped); err != nil {
				return err
			}
		}
		view = &optin.SubjectView{Address: a, Erased: key == nil}
		if rec.ErasureAt != 0 {
			view.ErasureAt = time.Unix(0, rec.ErasureAt).UTC()
		}
		if view.Consents, err = consentsOf(tx, rec, a, key); err != nil {
			return err
		}
		view.Suppressions = suppressionsOf(rec, a)
		view.Events, err = recentEvents(tx, sid, rec, key, a, recent)
		return err
	})
	if err != nil {
		return nil, err
	}
	return view, nil
}

// consentsOf returns the records by purpose name with their evidence.
func consentsOf(tx *bolt.Tx, rec *record, a optin.Address, key []byte) ([]optin.Consent, error) {
	purposes := make([]string, 0, len(rec.Consents))
	for p := range rec.Consents {
		purposes = append(purposes, p)
	}
	sort.Strings(purposes)
	out := make([]optin.Consent, 0, len(purposes))
	for _, p := range purposes {
		c, err := rec.consent(a, p)
		if err != nil {
			return nil, err
		}
		if seq, ok := rec.Recorded[p]; ok && key != nil {
			sealed, err := loadEvent(tx, seq)
			if err != nil {
				return nil, err
			}
			if sealed.ID != c.EventID {
				return nil, fmt.Errorf("%w: consent %s names event %s, found %s", optin.ErrCorrupt, p, c.EventID, sealed.ID)
			}
			e, err := optin.Open(rec.keyAt(key, seq), *sealed)
			if err != nil {
				return nil, err
			}
			c.Evidence = optin.EvidenceOf(e)
		}
		out = append(out, *c)
	}
	return out, nil
}

func suppressionsOf(rec *record, a optin.Address) []optin.Suppression {
	out := make([]optin.Suppression, 0, len(rec.Suppressions))
	for reason, t := range rec.Suppressions {
		out = append(out, optin.Suppression{Subject: a, Reason: reason, CreatedAt: time.Unix(0, t).UTC()})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// recentEvents opens the last n events of each of the subject's chains
// and keeps the last n of them merged by time, oldest first.
func recentEvents(tx *bolt.Tx, sid string, rec *record, key []byte, a optin.Address, n int) ([]optin.Event, error) {
	var chains [2][]optin.Event
	for c, ch := range []struct {
		b         *bolt.Bucket
		from, end uint64
	}{{tx.Bucket(bucketChains), 0, rec.Events}, {tx.Bucket(bucketReceipts), rec.Pruned, rec.Receipts}} {
		first := ch.end - min(ch.end-ch.from, uint64(n))
		for i := first; i < ch.end; i++ {
			seq, err := chainSeq(ch.b, sid, i)
			if err != nil {
				return nil, err
			}
			sealed, err := loadEvent(tx, seq)
			if err != nil {
				return nil, err
			}
			e, err := optin.Open(rec.keyAt(key, seq), *sealed)
			if err != nil {
				return nil, err
			}
			if sealed.Receipt && !e.Erased {
				e.Subject = a
			}
			chains[c] = append(chains[c], e)
		}
	}
	out := make([]optin.Event, 0, len(chains[0])+len(chains[1]))
	i, j := 0, 0
	for i < len(chains[0]) || j < len(chains[1]) {
		if j == len(chains[1]) || i < len(chains[0]) && !chains[1][j].Time.Before(chains[0][i].Time) {
			out = append(out, chains[0][i])
			i++
		} else {
			out = append(out, chains[1][j])
			j++
		}
	}
	return out[max(0, len(out)-n):], nil
}

// Lookup returns each address's record for q.Purpose and its
// suppressions, and with q.Message whether the message went to it (a
// mark not past its Until by the store's clock), in the order asked,
// from one read transaction.
func (s *Store) Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error) {
	for i, a := range q.Addresses {
		if a.IsZero() {
			return nil, fmt.Errorf("filestore: address %d: %w: empty", i, optin.ErrBadAddress)
		}
	}
	var hash []byte
	var now time.Time
	if q.Message != "" {
		hash, now = optin.MessageHash(q.Message), s.now()
	}
	out := make([]optin.Standing, len(q.Addresses))
	ring := s.keys.Get()
	err := s.view(ctx, func(tx *bolt.Tx) error {
		subjects, marks := tx.Bucket(bucketSubjects), tx.Bucket(bucketDeliveries)
		for i, a := range q.Addresses {
			out[i].Address = a
			sid := ring.SubjectID(a)
			v := subjects.Get([]byte(sid))
			if v == nil {
				continue
			}
			if hash != nil {
				out[i].Delivered = delivered(marks, sid, hash, now)
			}
			enc, reasons, err := standing(sid, v, q.Purpose)
			if err != nil {
				return err
			}
			if enc != "" {
				c, err := optin.DecodeConsent(a, q.Purpose, enc)
				if err != nil {
					return err
				}
				out[i].Consent = &c
			}
			out[i].Suppressions = reasons
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
