package storetest

import (
	"errors"
	"testing"
	"time"

	"optinproxy/optin"
)

// testPruneStaleTarget: a target that has not saved since the cut (its
// endpoint was removed) no longer holds items back and loses its cursor;
// a target that saved since, records only, keeps its cursor and every
// item it has not taken, and items not older than the cut stay whatever
// the cursors. A forgotten target that saves again is a new one.
func testPruneStaleTarget(t *testing.T, h Harness) {
	f := openFixture(t, h)
	items := f.grants(4, "stale.example")
	gone := f.delivery("stopped", items[0], optin.DeliveryRetired)
	f.save("stopped", items[0].Pos, gone)
	pending := f.delivery("live", items[2], optin.DeliveryPending)
	f.save("live", items[2].Pos, pending)
	f.save("idle", items[3].Pos) // took everything, then had nothing to do

	f.clock.advance(48 * time.Hour)
	// The live target retries its pending delivery: a save of a record
	// alone, its cursor where it was.
	pending.Attempts, pending.LastAt = 1, f.clock.Now()
	f.save("live", "", pending)
	cut := f.clock.Now().Add(-24 * time.Hour)
	newer := f.grants(2, "stale-later.example")

	n, err := f.store.PruneOutbox(f.ctx, cut)
	if err != nil || n != 4 {
		t.Fatalf("PruneOutbox: %d, %v; want 4 (the stopped target's record, the 3 items the live cursor passed)", n, err)
	}
	for _, target := range []string{"stopped", "idle"} {
		if c, err := f.store.OutboxCursor(f.ctx, target); !errors.Is(err, optin.ErrNotFound) {
			t.Errorf("OutboxCursor of %s, not seen since the cut: %q, %v; want ErrNotFound", target, c, err)
		}
	}
	f.wantCursor("the live target after pruning", "live", items[2].Pos)
	f.wantDelivery("the live target's pending record", pending)
	if _, err := f.store.OutboxItem(f.ctx, items[1].Pos); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("OutboxItem of an item only the stopped target held: %v, want ErrNotFound", err)
	}
	want := []optin.Event{items[3].Event, newer[0].Event, newer[1].Event}
	f.sameItems("what the live target has not taken", f.outboxAll(items[2].Pos, 10), want)
	f.sameItems("the outbox after pruning", f.outboxAll("", 10), want)
	// The idle target's cursor went, not the items written since the cut:
	// its dispatcher, reading on from where it was, gets them.
	f.sameItems("after the idle target's position", f.outboxAll(items[3].Pos, 10), want[1:])
	if n, err := f.store.PruneOutbox(f.ctx, cut); err != nil || n != 0 {
		t.Errorf("PruneOutbox once more: %d, %v; want 0", n, err)
	}
	f.wantCursor("the live target after pruning again", "live", items[2].Pos)

	// The stopped target comes back: it starts again, like a new one, and
	// holds items back from then on.
	cut = f.clock.Now()
	f.save("stopped", items[3].Pos)
	f.save("live", newer[1].Pos)
	if n, err := f.store.PruneOutbox(f.ctx, cut); err != nil || n != 1 {
		t.Errorf("PruneOutbox with both targets seen: %d, %v; want 1 (the item both took; the one that came back holds the rest)", n, err)
	}
	f.wantCursor("the target that came back", "stopped", items[3].Pos)
	f.sameItems("the outbox held by the target that came back", f.outboxAll("", 10), want[1:])

	// Nobody saves for the whole retention: nothing is held back.
	f.clock.advance(48 * time.Hour)
	if n, err := f.store.PruneOutbox(f.ctx, f.clock.Now().Add(-24*time.Hour)); err != nil || n != 2 {
		t.Errorf("PruneOutbox with no target seen: %d, %v; want 2 items", n, err)
	}
	if rest := f.outboxAll("", 10); len(rest) != 0 {
		t.Errorf("the outbox with no target seen: %d items, want none", len(rest))
	}
	for _, target := range []string{"stopped", "live"} {
		if _, err := f.store.OutboxCursor(f.ctx, target); !errors.Is(err, optin.ErrNotFound) {
			t.Errorf("OutboxCursor of %s after the whole retention: %v; want ErrNotFound", target, err)
		}
	}
	f.wantDelivery("a pending record of a forgotten target", pending)
}
