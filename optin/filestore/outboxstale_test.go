package filestore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

// TestPruneCursorWithoutSignOfLife: a cursor without a time of its last
// save, as an older version saved it, holds items back and gets one at
// the first prune, and is forgotten only once it has not been seen for
// the retention since.
func TestPruneCursorWithoutSignOfLife(t *testing.T) {
	c := testtools.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s := openClock(t, filepath.Join(t.TempDir(), "optinproxy.db"), c.Now)
	ctx := context.Background()
	if err := s.SaveDeliveries(ctx, "old", nil, "0"); err != nil {
		t.Fatal(err)
	}
	a, err := optin.ParseAddress("held@example.com")
	if err != nil {
		t.Fatal(err)
	}
	ch := optin.Change{Subject: a, AddSuppression: optin.SuppressManual, Event: optin.Event{Type: optin.EventSuppressionAdded, Subject: a, Actor: "test"}}
	if _, err := s.Apply(ctx, []optin.Change{ch}); err != nil {
		t.Fatal(err)
	}
	savedAt := func() []byte {
		var v []byte
		if err := s.db.View(func(tx *bolt.Tx) error { v = tx.Bucket(bucketOutboxSaved).Get([]byte("old")); return nil }); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if string(savedAt()) != string(createdKey(c.Now())) {
		t.Fatalf("the time of the save: %x, want the store's clock", savedAt())
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOutboxSaved).Delete([]byte("old")) }); err != nil {
		t.Fatal(err)
	}

	c.Advance(48 * time.Hour)
	if n, err := s.PruneOutbox(ctx, c.Now().Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("PruneOutbox with a cursor of no known age: %d, %v; want 0", n, err)
	}
	if cur, err := s.OutboxCursor(ctx, "old"); err != nil || cur != "0" {
		t.Fatalf("OutboxCursor after the first prune: %q, %v", cur, err)
	}
	if string(savedAt()) != string(createdKey(c.Now())) {
		t.Errorf("the time given at the first prune: %x", savedAt())
	}

	c.Advance(48 * time.Hour)
	if n, err := s.PruneOutbox(ctx, c.Now().Add(-24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneOutbox a retention later: %d, %v; want the item", n, err)
	}
	if savedAt() != nil {
		t.Error("the forgotten target's time is left")
	}
}
