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
// first, and its last recent events oldest first (recent is capped at
// optin.MaxPageSize). ErrNotFound when nothing is stored.
func (s *Store) Subject(ctx context.Context, a optin.Address, recent int) (*optin.SubjectView, error) {
	if a.IsZero() {
		return nil, fmt.Errorf("filestore: %w: no subject", optin.ErrBadAddress)
	}
	recent = min(max(recent, 0), optin.MaxPageSize)
	sid := optin.SubjectID(s.key, a)
	var view *optin.SubjectView
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rec, err := loadRecord(tx, sid)
		if err != nil {
			return err
		}
		if rec == nil {
			return fmt.Errorf("filestore: subject: %w", optin.ErrNotFound)
		}
		view = &optin.SubjectView{Address: a}
		if view.Consents, err = consentsOf(tx, rec, a); err != nil {
			return err
		}
		view.Suppressions = suppressionsOf(rec, a)
		view.Events, err = recentEvents(tx, sid, rec, recent)
		return err
	})
	if err != nil {
		return nil, err
	}
	return view, nil
}

// consentsOf returns the records by purpose name with their evidence.
func consentsOf(tx *bolt.Tx, rec *record, a optin.Address) ([]optin.Consent, error) {
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
		if seq, ok := rec.Recorded[p]; ok && rec.Key != nil {
			sealed, err := loadEvent(tx, seq)
			if err != nil {
				return nil, err
			}
			if sealed.ID != c.EventID {
				return nil, fmt.Errorf("%w: consent %s names event %s, found %s", optin.ErrCorrupt, p, c.EventID, sealed.ID)
			}
			e, err := optin.Open(rec.Key, *sealed)
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

// recentEvents opens the subject's last n events, oldest first.
func recentEvents(tx *bolt.Tx, sid string, rec *record, n int) ([]optin.Event, error) {
	first := rec.Events - min(rec.Events, uint64(n))
	out := make([]optin.Event, 0, rec.Events-first)
	for i := first; i < rec.Events; i++ {
		seq, err := chainSeq(tx, sid, i)
		if err != nil {
			return nil, err
		}
		sealed, err := loadEvent(tx, seq)
		if err != nil {
			return nil, err
		}
		e, err := optin.Open(rec.Key, *sealed)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
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
	err := s.view(ctx, func(tx *bolt.Tx) error {
		subjects, marks := tx.Bucket(bucketSubjects), tx.Bucket(bucketDeliveries)
		for i, a := range q.Addresses {
			out[i].Address = a
			sid := optin.SubjectID(s.key, a)
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
