package filestore

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// verifyChunk is how many subjects one read transaction of Verify checks,
// so that writers are not kept from growing the file for long.
const verifyChunk = 1000

// Verify walks every subject's chain in order: each event must hash to
// its Hash and name the previous event's hash as Prev, and the last must
// be the subject's head. Each subject is checked within one read
// transaction; the whole walk is not one snapshot.
func (s *Store) Verify(ctx context.Context) (optin.VerifyReport, error) {
	report := optin.VerifyReport{Broken: []optin.BrokenChain{}}
	var after []byte
	for {
		done := true
		err := s.view(ctx, func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketSubjects).Cursor()
			k, _ := c.First()
			if after != nil {
				if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, _ = c.Next()
				}
			}
			for n := 0; k != nil; k, _ = c.Next() {
				if n == verifyChunk {
					done = false
					return nil
				}
				if err := s.verifySubject(tx, string(k), &report); err != nil {
					return err
				}
				after = bytes.Clone(k)
				n++
			}
			return nil
		})
		if err != nil {
			return optin.VerifyReport{}, err
		}
		if done {
			return report, nil
		}
	}
}

// verifySubject checks one subject's two chains and adds it to the
// report. Only stored data that cannot be read at all is an error; a
// chain that does not verify is a finding.
func (s *Store) verifySubject(tx *bolt.Tx, sid string, report *optin.VerifyReport) error {
	rec, err := loadRecord(tx, sid)
	if err != nil {
		return err
	}
	report.Subjects++
	name := sid
	if _, a, err := rec.open(s.keys, sid); err == nil && !a.IsZero() {
		name = a.String()
	}
	for _, ch := range []struct {
		b          *bolt.Bucket
		from, end  uint64
		prev, head string
	}{
		{tx.Bucket(bucketChains), 0, rec.Events, "", rec.Head},
		{tx.Bucket(bucketReceipts), rec.Pruned, rec.Receipts, rec.PrunedHead, rec.ReceiptHead},
	} {
		prev, lastID := ch.prev, ""
		for i := ch.from; i < ch.end; i++ {
			seq, err := chainSeq(ch.b, sid, i)
			if err != nil {
				report.Broken = append(report.Broken, optin.BrokenChain{Subject: name, Event: lastID})
				return nil
			}
			e, err := loadEvent(tx, seq)
			if err != nil {
				report.Broken = append(report.Broken, optin.BrokenChain{Subject: name, Event: lastID})
				return nil
			}
			report.Events++
			if e.Receipt {
				report.Receipts++
			}
			if e.SubjectID != sid || !e.Intact(prev) {
				report.Broken = append(report.Broken, optin.BrokenChain{Subject: name, Event: e.ID})
				return nil
			}
			prev, lastID = e.Hash, e.ID
		}
		if prev != ch.head {
			// Events after the last one found are gone.
			report.Broken = append(report.Broken, optin.BrokenChain{Subject: name, Event: lastID})
			return nil
		}
	}
	return nil
}
