package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// testKeys is the ledger key of the tests' stores.
var testKeys = optin.StaticKeys(optin.NewKeyring(time.Now()))

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
	s, err := Open(path, Options{Timeout: time.Second, Now: now, Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// harness remembers each test's file for Reopen.
type harness struct {
	mu    sync.Mutex
	paths map[*testing.T]string
}

func (h *harness) open(t *testing.T, now func() time.Time, keys *optin.Keys) optin.Store {
	path := filepath.Join(t.TempDir(), "optinproxy.db")
	h.mu.Lock()
	h.paths[t] = path
	h.mu.Unlock()
	s, err := Open(path, Options{Timeout: time.Second, Now: now, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (h *harness) reopen(t *testing.T, st optin.Store, now func() time.Time, keys *optin.Keys) (optin.Store, error) {
	if st != nil {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	path := h.paths[t]
	h.mu.Unlock()
	s, err := Open(path, Options{Timeout: time.Second, Now: now, Keys: keys})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}

// raw is the whole file, with everything else in its folder.
func raw(t *testing.T, st optin.Store) []byte {
	s := st.(*Store)
	var out []byte
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(s.path), "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// snapshot copies the file as a backup does (a read transaction's
// consistent copy).
func snapshot(t *testing.T, st optin.Store) func(*optin.Keys) (optin.Store, error) {
	s := st.(*Store)
	path := filepath.Join(t.TempDir(), "backup.db")
	err := s.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) })
	if err != nil {
		t.Fatal(err)
	}
	return func(keys *optin.Keys) (optin.Store, error) {
		c, err := Open(path, Options{Timeout: time.Second, Keys: keys})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		return c, nil
	}
}

// lose deletes the file under the open store.
func lose(t *testing.T, st optin.Store) {
	if err := os.Remove(st.(*Store).path); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	h := &harness{paths: map[*testing.T]string{}}
	storetest.Run(t, storetest.Harness{
		Open:     h.open,
		Reopen:   h.reopen,
		Tamper:   tamper,
		Raw:      raw,
		Snapshot: snapshot,
		Lose:     lose,
	})
}

// tamper rewrites the actor of the subject's second event (or its only
// one) of its main or receipt chain in the file, leaving its hash as it
// was.
func tamper(t *testing.T, st optin.Store, a optin.Address, receipt bool) {
	s := st.(*Store)
	sid := s.keys.Get().SubjectID(a)
	err := s.db.Update(func(tx *bolt.Tx) error {
		rec, err := loadRecord(tx, sid)
		if err != nil || rec == nil {
			t.Fatalf("tamper: no subject %s: %v", a, err)
		}
		chain, from, n := tx.Bucket(bucketChains), uint64(0), rec.Events
		if receipt {
			chain, from, n = tx.Bucket(bucketReceipts), rec.Pruned, rec.Receipts
		}
		seq, err := chainSeq(chain, sid, from+min(1, n-from-1))
		if err != nil {
			return err
		}
		e, err := loadEvent(tx, seq)
		if err != nil {
			return err
		}
		e.Actor = "someone else"
		return tx.Bucket(bucketEvents).Put(seqKey(seq), encodeEvent(e))
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
	s, err := Open(path, Options{Timeout: 200 * time.Millisecond, Keys: testKeys})
	if err == nil {
		s.Close()
		t.Fatal("a second Open of an open file succeeded")
	}
	if !errors.Is(err, optin.ErrUnavailable) || !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Open: %v; want ErrLocked and ErrUnavailable, saying the file is in use", err)
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
	if _, err := Open(text, Options{Keys: testKeys}); !errors.Is(err, optin.ErrCorrupt) || !strings.Contains(err.Error(), "not an optinproxy database") {
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
	if _, err := Open(other, Options{Keys: testKeys}); !errors.Is(err, optin.ErrCorrupt) {
		t.Errorf("Open of another program's bbolt file: %v; want ErrCorrupt", err)
	}
}

func TestOptions(t *testing.T) {
	if _, err := Open("", Options{Keys: testKeys}); err == nil {
		t.Error("Open without a path succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), Options{}); err == nil {
		t.Error("Open without a ledger key succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), Options{Timeout: -time.Second, Keys: testKeys}); err == nil {
		t.Error("Open with a negative timeout succeeded")
	}
	// The directory is made when missing.
	s := openAt(t, filepath.Join(t.TempDir(), "new", "dir", "optinproxy.db"))
	if err := s.Ping(context.Background()); err != nil {
		t.Error(err)
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
	sid := s.keys.Get().SubjectID(a)
	err = s.db.Update(func(tx *bolt.Tx) error {
		rec, err := loadRecord(tx, sid)
		if err != nil {
			return err
		}
		rec.Wrapped, rec.Sealed = nil, nil
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
	tamper(t, s, a, false)
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
		changes[i] = optin.Receipt{Subject: a, Purpose: "news", Actor: "smtp", Time: time.Now(), Relayed: true,
			Decision: optin.Decision{Allow: true, Reason: optin.ReasonTransactional}}.Change()
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
		Sealed: []byte("sealed address"), Wrapped: optin.NewKey(), Head: "abc", Events: 300,
		ReceiptHead: "def", Receipts: 9000, Pruned: 12, PrunedHead: "0a1b",
		Consents:     map[string]string{"news": "granted|consent|form|1|1|0|id", "orders": "granted|contract|api|2|2|0|id2"},
		Recorded:     map[string]uint64{"news": 7},
		Suppressions: map[optin.SuppressionReason]int64{optin.SuppressComplaint: -5, optin.SuppressManual: 1 << 60},
	}
	enc := r.encode()
	got, err := decodeRecord("sid", enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sealed, r.Sealed) || !bytes.Equal(got.Wrapped, r.Wrapped) || got.Head != r.Head || got.Events != r.Events ||
		got.ReceiptHead != r.ReceiptHead || got.Receipts != r.Receipts || got.Pruned != r.Pruned || got.PrunedHead != r.PrunedHead ||
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

// TestOpenTruncated: a file cut short (a copy or a full disk) is
// ErrCorrupt saying so, at every cut, not a panic in bbolt's free-list
// walk; the file is left as it was.
func TestOpenTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "optinproxy.db")
	s := openAt(t, path)
	storetest.Seed(t, s, 300, storetest.GrantedWithReceipts(storetest.SeedLedger(t, s, time.Now), 2))
	s.Close()
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "optinproxy.db")
	for n := 3 * 4096; n < len(whole); n += len(whole) / 16 {
		if err := os.WriteFile(cut, whole[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(cut, Options{Timeout: time.Second, Keys: testKeys})
		if err == nil {
			// Past the last page bbolt wrote, the file is whole.
			if _, err := s.Verify(context.Background()); err != nil {
				t.Errorf("cut to %d of %d bytes: opened, then Verify: %v", n, len(whole), err)
			}
			s.Close()
			continue
		}
		if !errors.Is(err, optin.ErrCorrupt) || !strings.Contains(err.Error(), "cut short") {
			t.Errorf("cut to %d of %d bytes: %v; want ErrCorrupt saying it is cut short", n, len(whole), err)
		}
		if fi, _ := os.Stat(cut); fi.Size() != int64(n) {
			t.Errorf("cut to %d bytes: the file is now %d", n, fi.Size())
		}
	}
}
