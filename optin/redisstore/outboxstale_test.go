package redisstore

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
)

// TestPruneCursorWithoutSignOfLife: a save notes its time (Unix ms in
// the target's slot); a cursor without one, as an older version saved
// it, holds items back and gets one at the first prune, and is forgotten
// only once it has not been seen for the retention since.
func TestPruneCursorWithoutSignOfLife(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	s := openOn(t, redistest.Start(t), Options{Now: clock})
	ctx := context.Background()

	if err := s.SaveDeliveries(ctx, "old", nil, "0-0"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.rdb.Get(ctx, s.keys.prefix+"{o:old}:ol").Result(); err != nil || v != strconv.FormatInt(clock().UnixMilli(), 10) {
		t.Fatalf("the time of the save: %q, %v; want the store's clock in Unix ms", v, err)
	}
	if _, err := s.Apply(ctx, []optin.Change{suppress(addr(t, "held@example.com"), optin.SuppressManual)}); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.Del(ctx, s.keys.saved("old")).Err(); err != nil {
		t.Fatal(err)
	}

	advance(48 * time.Hour)
	if n, err := s.PruneOutbox(ctx, clock().Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("PruneOutbox with a cursor of no known age: %d, %v; want 0", n, err)
	}
	if c, err := s.OutboxCursor(ctx, "old"); err != nil || c != "0-0" {
		t.Fatalf("OutboxCursor after the first prune: %q, %v", c, err)
	}
	if v, err := s.rdb.Get(ctx, s.keys.saved("old")).Result(); err != nil || v != strconv.FormatInt(clock().UnixMilli(), 10) {
		t.Errorf("the time given at the first prune: %q, %v", v, err)
	}

	advance(48 * time.Hour)
	if n, err := s.PruneOutbox(ctx, clock().Add(-24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneOutbox a retention later: %d, %v; want the item", n, err)
	}
	if n, err := s.rdb.Exists(ctx, s.keys.cursor("old"), s.keys.saved("old")).Result(); err != nil || n != 0 {
		t.Errorf("%d keys of the forgotten target left, %v", n, err)
	}
}
