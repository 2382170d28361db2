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
				if err := verifySubject(tx, string(k), &report); err != nil {
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

// verifySubject checks one chain and adds it to the report. Only stored
// data that cannot be read at all is an error; a chain that does not
// verify is a finding.
func verifySubject(tx *bolt.Tx, sid string, report *optin.VerifyReport) error {
	rec, err := loadRecord(tx, sid)
	if err != nil {
		return err
	}
	report.Subjects++
	name := rec.Address
	if name == "" {
		name = sid
	}
	prev, lastID := "", ""
	for i := uint64(0); i < rec.Events; i++ {
		seq, err := chainSeq(tx, sid, i)
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
		if e.SubjectID != sid || !e.Intact(prev) {
			report.Broken = append(report.Broken, optin.BrokenChain{Subject: name, Event: e.ID})
			return nil
		}
		prev, lastID = e.Hash, e.ID
	}
	if prev != rec.Head {
		// Events after the last one found are gone.
		report.Broken = append(report.Broken, optin.BrokenChain{Subject: name, Event: lastID})
	}
	return nil
}
