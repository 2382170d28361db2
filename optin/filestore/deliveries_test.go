package filestore

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

// relayed is a receipt for a that marks message delivered until until.
func relayed(t *testing.T, a string, message string, until time.Time) optin.Change {
	t.Helper()
	addr, err := optin.ParseAddress(a)
	if err != nil {
		t.Fatal(err)
	}
	return optin.Receipt{Subject: addr, Purpose: "news", Actor: "smtp", Relayed: true,
		Decision:  optin.Decision{Allow: true, Reason: optin.ReasonTransactional},
		Delivered: &optin.Delivery{Message: message, Until: until}}.Change()
}

// markCounts returns how many marks and expiry index entries the file
// holds.
func markCounts(t *testing.T, s *Store) (marks, expiry int) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		marks = tx.Bucket(bucketDeliveries).Stats().KeyN
		expiry = tx.Bucket(bucketDeliveryExpiry).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return marks, expiry
}

func wantMarks(t *testing.T, s *Store, what string, n int) {
	t.Helper()
	if m, e := markCounts(t, s); m != n || e != n {
		t.Errorf("%s: %d marks and %d expiry entries, want %d of each", what, m, e, n)
	}
}

// TestMarksPurged: writes delete the marks past their until, at most once
// a minute; a replaced mark leaves no stale expiry entry; the message key
// is not stored.
func TestMarksPurged(t *testing.T) {
	c := testtools.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s := openClock(t, filepath.Join(t.TempDir(), "optinproxy.db"), c.Now)
	ctx := context.Background()
	start := c.Now()
	const message = "mid:<purge-test@crm.example>"
	var changes []optin.Change
	for i := range 15 {
		until := start.Add(time.Hour)
		if i >= 10 {
			until = start.Add(3 * time.Hour)
		}
		changes = append(changes, relayed(t, fmt.Sprintf("p%02d@example.com", i), message, until))
	}
	// A second mark for the same subject and message replaces the first.
	changes = append(changes, relayed(t, "p14@example.com", message, start.Add(4*time.Hour)))
	if _, err := s.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	wantMarks(t, s, "after 15 subjects' marks", 15)

	c.Advance(2 * time.Hour) // past the first ten
	if _, err := s.Apply(ctx, []optin.Change{relayed(t, "later@example.com", message, c.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	wantMarks(t, s, "after a write past the first until", 6)

	c.Advance(90 * time.Minute) // start+3h30m: past p10 to p13 and later's mark
	wantMarks(t, s, "without a write", 6)
	if _, err := s.Apply(ctx, []optin.Change{relayed(t, "later@example.com", message, c.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	// p14's mark (start+4h) and later's, replaced, are left.
	wantMarks(t, s, "after a second write", 2)

	c.Advance(30 * time.Minute) // start+4h: p14's until
	write := func() {
		t.Helper()
		blocked := optin.Receipt{Subject: changes[0].Subject, Purpose: "news", Actor: "smtp", Decision: optin.Decision{Reason: optin.ReasonNoConsent}}
		if _, err := s.Apply(ctx, []optin.Change{blocked.Change()}); err != nil {
			t.Fatal(err)
		}
	}
	write()
	wantMarks(t, s, "after a write at p14's until", 1)

	// A mark that expires within the minute after a purge stays until
	// the next purge, but Lookup no longer reports it.
	quick := relayed(t, "quick@example.com", message, c.Now().Add(10*time.Second))
	if _, err := s.Apply(ctx, []optin.Change{quick}); err != nil {
		t.Fatal(err)
	}
	c.Advance(20 * time.Second)
	write()
	wantMarks(t, s, "20s after a purge", 2)
	if st, err := s.Lookup(ctx, optin.LookupQuery{Addresses: []optin.Address{quick.Subject}, Message: message}); err != nil || st[0].Delivered {
		t.Errorf("Lookup of a mark past its until, not yet purged: %+v %v", st, err)
	}
	c.Advance(45 * time.Second)
	write()
	wantMarks(t, s, "a minute after the last purge", 1)

	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if bytes.Contains(k, []byte("purge-test")) || bytes.Contains(v, []byte("purge-test")) {
					t.Errorf("bucket %s holds the message key", name)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPurgeBounded: one purge deletes at most its limit, oldest first,
// and a purge that hit the cap runs again on the next write.
func TestPurgeBounded(t *testing.T) {
	c := testtools.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s := openClock(t, filepath.Join(t.TempDir(), "optinproxy.db"), c.Now)
	start := c.Now()
	var changes []optin.Change
	for i := range 10 {
		changes = append(changes, relayed(t, fmt.Sprintf("b%02d@example.com", i), "mid:<b@x>", start.Add(time.Duration(i+1)*time.Minute)))
	}
	if _, err := s.Apply(context.Background(), changes); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	var n int
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		n, err = purgeMarks(tx, c.Now(), 4)
		return err
	})
	if err != nil || n != 4 {
		t.Fatalf("purgeMarks with a limit of 4: %d, %v", n, err)
	}
	wantMarks(t, s, "after a purge of 4", 6)
	// The oldest went first: the first four subjects have no mark left.
	err = s.db.View(func(tx *bolt.Tx) error {
		for i, ch := range changes {
			sid := s.keys.Get().SubjectID(ch.Subject)
			if has := tx.Bucket(bucketDeliveries).Get(markKey(sid, optin.MessageHash("mid:<b@x>"))) != nil; has != (i >= 4) {
				t.Errorf("subject %d: mark kept %v after purging the oldest four", i, has)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	s.nextPurge.Store(0)
	err = s.db.Update(func(tx *bolt.Tx) error { return s.purge(tx, c.Now()) })
	if err != nil {
		t.Fatal(err)
	}
	wantMarks(t, s, "after a full purge", 0)
	if next := s.nextPurge.Load(); next != c.Now().Add(purgeEvery).UnixNano() {
		t.Errorf("next purge at %s, want a minute on", time.Unix(0, next).UTC())
	}
}

// TestMarkBucketsAdded: a file made before the delivery marks (without
// their buckets) opens, and takes marks.
func TestMarkBucketsAdded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "optinproxy.db")
	s := openAt(t, path)
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketDeliveries, bucketDeliveryExpiry} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	ch := relayed(t, "old@example.com", "mid:<old@x>", time.Now().Add(time.Hour))
	if _, err := s.Apply(context.Background(), []optin.Change{ch}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Lookup(context.Background(), optin.LookupQuery{Addresses: []optin.Address{ch.Subject}, Message: "mid:<old@x>"})
	if err != nil || !st[0].Delivered {
		t.Errorf("Lookup of a mark in a file from before the marks: %+v %v", st, err)
	}
}
