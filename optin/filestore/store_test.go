package filestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// open opens a store in a new directory and closes it when the test ends.
func open(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "optinproxy.db"))
}

func openAt(t testing.TB, path string) *Store {
	t.Helper()
	return openClock(t, path, nil)
}

// openClock opens the store at path on the clock now (nil: time.Now).
func openClock(t testing.TB, path string, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(path, Options{Timeout: time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now func() time.Time) optin.Store {
			return openClock(t, filepath.Join(t.TempDir(), "optinproxy.db"), now)
		},
		Reopen: func(t *testing.T, s optin.Store, now func() time.Time) optin.Store {
			path := s.(*Store).db.Path()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return openClock(t, path, now)
		},
		Tamper: tamper,
	})
}

// tamper rewrites the actor of the subject's second event (or its only
// one) in the file, leaving its hash as it was.
func tamper(t *testing.T, s optin.Store, a optin.Address) {
	fs := s.(*Store)
	sid := optin.SubjectID(fs.key, a)
	err := fs.db.Update(func(tx *bolt.Tx) error {
		rec, err := loadRecord(tx, sid)
		if err != nil || rec == nil {
			t.Fatalf("tamper: no subject %s: %v", a, err)
		}
		seq, err := chainSeq(tx, sid, min(1, rec.Events-1))
		if err != nil {
			return err
		}
		e, err := loadEvent(tx, seq)
		if err != nil {
			return err
		}
		e.Actor = "someone else"
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketEvents).Put(seqKey(seq), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSecondOpenFails: the file lock keeps a second opener out, with a
// clear error within its timeout.
func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "optinproxy.db")
	openAt(t, path)
	start := time.Now()
	s, err := Open(path, Options{Timeout: 200 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("a second Open of an open file succeeded")
	}
	if !errors.Is(err, optin.ErrUnavailable) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Open: %v; want ErrUnavailable saying the file is in use", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("second Open took %s with a timeout of 200ms", waited)
	}
}

// TestNotADatabase: a file that is not bbolt, or bbolt of another
// program, is refused as corrupt, not overwritten.
func TestNotADatabase(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text.db")
	if err := os.WriteFile(text, bytes.Repeat([]byte("this is not a database\n"), 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(text, Options{}); !errors.Is(err, optin.ErrCorrupt) || !strings.Contains(err.Error(), "not an optinproxy database") {
		t.Errorf("Open of a text file: %v; want ErrCorrupt", err)
	}

	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(other, Options{}); !errors.Is(err, optin.ErrCorrupt) {
		t.Errorf("Open of another program's bbolt file: %v; want ErrCorrupt", err)
	}
}

func TestOptions(t *testing.T) {
	if _, err := Open("", Options{}); err == nil {
		t.Error("Open without a path succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), Options{Timeout: -time.Second}); err == nil {
		t.Error("Open with a negative timeout succeeded")
	}
	// The directory is made when missing.
	s := openAt(t, filepath.Join(t.TempDir(), "new", "dir", "optinproxy.db"))
	if err := s.Ping(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestSealedAtRest: no address or evidence is readable in the events as
// stored; the subject records and the suppression index hold the address
// (they must, to list and show it), nothing else does.
func TestSealedAtRest(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	a, _ := optin.ParseAddress("secret.person@example.org")
	l, err := optin.NewLedger(optin.LedgerOptions{Store: s, Purposes: optin.Purposes{
		"news": {Name: "news", Basis: optin.BasisConsent, Category: optin.CategoryMarketing},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Grant(ctx, a, "news", optin.ConsentChange{Evidence: optin.Evidence{IP: "203.0.113.77"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Suppress(ctx, a, optin.SuppressManual, "admin"); err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEvents, bucketChains, bucketMeta} {
			tx.Bucket(name).ForEach(func(k, v []byte) error {
				for _, secret := range []string{"secret.person", "203.0.113.77"} {
					if bytes.Contains(k, []byte(secret)) || bytes.Contains(v, []byte(secret)) {
						t.Errorf("bucket %s holds %q in the clear", name, secret)
					}
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestErasedSubject: once a subject's key and address are gone (what
// erasure will do), its events read as erased, its records stay usable
// and its chain still verifies, named by its subject id when broken.
func TestErasedSubject(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	a, _ := optin.ParseAddress("gone@example.com")
	l, err := optin.NewLedger(optin.LedgerOptions{Store: s, Purposes: optin.Purposes{
		"news": {Name: "news", Basis: optin.BasisConsent, Category: optin.CategoryMarketing},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Grant(ctx, a, "news", optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.5"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Suppress(ctx, a, optin.SuppressErased, "admin"); err != nil {
		t.Fatal(err)
	}
	sid := optin.SubjectID(s.key, a)
	err = s.db.Update(func(tx *bolt.Tx) error {
		rec, err := loadRecord(tx, sid)
		if err != nil {
			return err
		}
		tx.Bucket(bucketSuppressions).Delete(suppressionKey(rec.Address, optin.SuppressErased))
		rec.Key, rec.Address = nil, ""
		return putRecord(tx, sid, rec)
	})
	if err != nil {
		t.Fatal(err)
	}

	v, err := s.Subject(ctx, a, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Events) != 2 || !v.Events[0].Erased || !v.Events[0].Subject.IsZero() || v.Events[0].Details != nil ||
		len(v.Consents) != 1 || v.Consents[0].Evidence != nil {
		t.Errorf("view of an erased subject: %+v", v)
	}
	page, err := s.Events(ctx, optin.EventQuery{})
	if err != nil || len(page.Events) != 2 || !page.Events[1].Erased {
		t.Errorf("Events of an erased subject: %+v %v", page, err)
	}
	if st, err := s.Lookup(ctx, optin.LookupQuery{Purpose: "news", Addresses: []optin.Address{a}}); err != nil || len(st[0].Suppressions) != 1 {
		t.Errorf("Lookup of an erased subject: %+v %v", st, err)
	}
	if r, err := s.Verify(ctx); err != nil || r.Subjects != 1 || r.Events != 2 || len(r.Broken) != 0 {
		t.Errorf("Verify with an erased subject: %+v %v", r, err)
	}
	tamper(t, s, a)
	if r, err := s.Verify(ctx); err != nil || len(r.Broken) != 1 || r.Broken[0].Subject != sid {
		t.Errorf("Verify of a broken erased chain: %+v %v; want it named by %s", r, err, sid)
	}
}

// TestVerifyInChunks: Verify walks more subjects than one of its read
// transactions takes.
func TestVerifyInChunks(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	const n = 2*verifyChunk + 17
	changes := make([]optin.Change, n)
	for i := range changes {
		a, _ := optin.ParseAddress(fmt.Sprintf("r%05d@example.com", i))
		changes[i] = optin.Change{Subject: a, Event: optin.Event{Type: optin.EventMessageRelayed, Actor: "smtp"}}
	}
	if _, err := s.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Verify(ctx); err != nil || r.Subjects != n || r.Events != n || len(r.Broken) != 0 {
		t.Errorf("Verify of %d subjects: %+v %v", n, r, err)
	}
}

// TestRecordCodec: records round-trip, and damaged ones are ErrCorrupt.
func TestRecordCodec(t *testing.T) {
	r := &record{
		Address: "jan@example.com", Key: optin.NewKey(), Head: "abc", Events: 300,
		Consents:     map[string]string{"news": "granted|consent|form|1|1|0|id", "orders": "granted|contract|api|2|2|0|id2"},
		Recorded:     map[string]uint64{"news": 7},
		Suppressions: map[optin.SuppressionReason]int64{optin.SuppressComplaint: -5, optin.SuppressManual: 1 << 60},
	}
	enc := r.encode()
	got, err := decodeRecord("sid", enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Address != r.Address || !bytes.Equal(got.Key, r.Key) || got.Head != r.Head || got.Events != r.Events ||
		fmt.Sprint(got.Consents) != fmt.Sprint(r.Consents) || fmt.Sprint(got.Recorded) != fmt.Sprint(r.Recorded) ||
		fmt.Sprint(got.Suppressions) != fmt.Sprint(r.Suppressions) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
	}
	c, reasons, err := standing("sid", enc, "orders")
	if err != nil || c != r.Consents["orders"] || len(reasons) != 2 || reasons[0] != optin.SuppressComplaint {
		t.Errorf("standing: %q %v %v", c, reasons, err)
	}
	for i := range len(enc) {
		if _, err := decodeRecord("sid", enc[:i]); !errors.Is(err, optin.ErrCorrupt) {
			t.Fatalf("record cut at %d: %v", i, err)
		}
		if _, _, err := standing("sid", enc[:i], "news"); !errors.Is(err, optin.ErrCorrupt) {
			t.Fatalf("standing of a record cut at %d: %v", i, err)
		}
	}
	if _, err := decodeRecord("sid", append(enc, 0)); !errors.Is(err, optin.ErrCorrupt) {
		t.Errorf("record with a trailing byte: %v", err)
	}
}
