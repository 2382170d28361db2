package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

// delivery is a record of item for target, created at the clock's
// reading.
func (f *fixture) delivery(target string, it optin.OutboxItem, st optin.DeliveryStatus) optin.OutboxDelivery {
	created := f.clock.Now()
	d := optin.OutboxDelivery{Target: target, EventID: it.Event.ID, EventType: it.Event.Type, Pos: it.Pos,
		SubjectID: it.SubjectID, Status: st, Created: created, NextAt: created.Add(time.Minute)}
	if st != optin.DeliveryPending {
		d.NextAt, d.DoneAt, d.LastAt, d.Attempts = time.Time{}, created.Add(time.Second), created.Add(time.Second), 1
	}
	return d
}

// save saves ds of target and moves its cursor to cursor.
func (f *fixture) save(target, cursor string, ds ...optin.OutboxDelivery) {
	f.tb.Helper()
	if err := f.store.SaveDeliveries(f.ctx, target, ds, cursor); err != nil {
		f.tb.Fatalf("SaveDeliveries(%s, %d records, %q): %v", target, len(ds), cursor, err)
	}
}

func (f *fixture) mark(key string, d time.Duration) {
	f.tb.Helper()
	if err := f.store.Mark(f.ctx, key, f.clock.Now().Add(d)); err != nil {
		f.tb.Fatalf("Mark(%q): %v", key, err)
	}
}

func (f *fixture) wantSeen(what, key string, want bool) {
	f.tb.Helper()
	if got, err := f.store.Seen(f.ctx, key); err != nil || got != want {
		f.tb.Errorf("%s: Seen(%q) = %v, %v; want %v", what, key, got, err, want)
	}
}

func (f *fixture) wantCursor(what, target, want string) {
	f.tb.Helper()
	if got, err := f.store.OutboxCursor(f.ctx, target); err != nil || got != want {
		f.tb.Errorf("%s: OutboxCursor(%s) = %q, %v; want %q", what, target, got, err, want)
	}
}

// wantDelivery checks that the store holds want.
func (f *fixture) wantDelivery(what string, want optin.OutboxDelivery) {
	f.tb.Helper()
	got, err := f.store.Delivery(f.ctx, want.Target, want.EventID)
	if err != nil {
		f.tb.Errorf("%s: Delivery(%s, %s): %v", what, want.Target, want.EventID, err)
		return
	}
	sameDelivery(f.tb, what, got, want)
}

func sameDelivery(tb testing.TB, what string, got, want optin.OutboxDelivery) {
	tb.Helper()
	switch {
	case got.Target != want.Target, got.EventID != want.EventID, got.EventType != want.EventType, got.Pos != want.Pos,
		got.SubjectID != want.SubjectID, got.Status != want.Status, got.Attempts != want.Attempts,
		!got.Created.Equal(want.Created), !got.NextAt.Equal(want.NextAt), !got.LastAt.Equal(want.LastAt),
		!got.DoneAt.Equal(want.DoneAt), got.LastError != want.LastError:
		tb.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// deliveries reads every record of q, q.Limit a page.
func (f *fixture) deliveries(q optin.DeliveryQuery) []optin.OutboxDelivery {
	f.tb.Helper()
	var out []optin.OutboxDelivery
	for range 1000 {
		p, err := f.store.Deliveries(f.ctx, q)
		if err != nil {
			f.tb.Fatalf("Deliveries(%+v): %v", q, err)
		}
		if q.Limit > 0 && len(p.Deliveries) > q.Limit {
			f.tb.Fatalf("Deliveries(%+v): %d records", q, len(p.Deliveries))
		}
		out = append(out, p.Deliveries...)
		if p.NextCursor == "" {
			return out
		}
		if len(p.Deliveries) == 0 {
			f.tb.Fatalf("Deliveries(%+v): an empty page with a cursor", q)
		}
		q.Cursor = p.NextCursor
	}
	f.tb.Fatal("Deliveries does not come to an end")
	return nil
}

func (f *fixture) wantDeliveries(what string, q optin.DeliveryQuery, want ...optin.OutboxDelivery) {
	f.tb.Helper()
	got := f.deliveries(q)
	if len(got) != len(want) {
		f.tb.Errorf("%s: %d records, want %d\n got %v\nwant %v", what, len(got), len(want), eventIDs(got), eventIDs(want))
		return
	}
	for i := range got {
		sameDelivery(f.tb, fmt.Sprintf("%s: record %d", what, i), got[i], want[i])
	}
}

func eventIDs(ds []optin.OutboxDelivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Target + "/" + d.EventID
	}
	return out
}

// grants queues n grants and returns their items.
func (f *fixture) grants(n int, domain string) []optin.OutboxItem {
	f.tb.Helper()
	after, err := f.store.OutboxEnd(f.ctx)
	if err != nil {
		f.tb.Fatal(err)
	}
	var changes []optin.Change
	for i := range n {
		changes = append(changes, f.grant(f.addr(fmt.Sprintf("g%d@%s", i, domain)), newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
	}
	f.apply(changes...)
	items := f.outboxAll(after, 100)
	if len(items) != n {
		f.tb.Fatalf("%d grants queued %d items", n, len(items))
	}
	return items
}

// testOutboxDeliveries: records are saved, replaced and moved between
// statuses; each status lists its records oldest first, of one target or
// of all, in pages.
func testOutboxDeliveries(t *testing.T, h Harness) {
	f := openFixture(t, h)
	items := f.grants(6, "records.example")
	pending := optin.DeliveryQuery{Target: "hook-a", Status: optin.DeliveryPending}
	retired := optin.DeliveryQuery{Target: "hook-a", Status: optin.DeliveryRetired}
	dead := optin.DeliveryQuery{Target: "hook-a", Status: optin.DeliveryDead}

	a0, a1 := f.delivery("hook-a", items[0], optin.DeliveryPending), f.delivery("hook-a", items[1], optin.DeliveryPending)
	f.save("hook-a", items[1].Pos, a0, a1)
	f.wantCursor("after the first save", "hook-a", items[1].Pos)
	f.wantDelivery("a saved record", a0)
	f.wantDeliveries("pending", pending, a0, a1)

	// A retry replaces the record; delivered, it moves to retired.
	a0.Attempts, a0.LastAt, a0.LastError, a0.NextAt = 1, f.clock.Now(), "HTTP 503", f.clock.Now().Add(time.Hour)
	f.save("hook-a", "", a0)
	f.wantDelivery("a record replaced", a0)
	f.wantDeliveries("pending after a retry", pending, a0, a1)
	a0.Status, a0.Attempts, a0.DoneAt, a0.NextAt, a0.LastError = optin.DeliveryRetired, 2, f.clock.Now(), time.Time{}, ""
	f.save("hook-a", "", a0)
	f.wantDeliveries("pending after one was delivered", pending, a1)
	f.wantDeliveries("retired", retired, a0)
	a1.Status, a1.DoneAt, a1.LastError = optin.DeliveryDead, f.clock.Now(), "HTTP 410"
	f.save("hook-a", "", a1)
	f.wantDeliveries("pending after one died", pending)
	f.wantDeliveries("dead", dead, a1)
	f.wantCursor("after saves without a cursor", "hook-a", items[1].Pos)
	// Replayed by an operator: back to pending.
	a1.Status, a1.DoneAt, a1.NextAt = optin.DeliveryPending, time.Time{}, f.clock.Now()
	f.save("hook-a", "", a1)
	f.wantDeliveries("dead after a replay", dead)
	f.wantDeliveries("pending after a replay", pending, a1)

	// Another target, its records made between hook-a's: all targets
	// list by Created.
	var b []optin.OutboxDelivery
	for _, it := range items {
		b = append(b, f.delivery("sync", it, optin.DeliveryPending))
	}
	a2 := f.delivery("hook-a", items[2], optin.DeliveryPending)
	f.save("sync", items[5].Pos, b...)
	f.save("hook-a", items[2].Pos, a2)
	f.wantCursor("a second target", "sync", items[5].Pos)
	f.wantCursor("the first target", "hook-a", items[2].Pos)
	all := append([]optin.OutboxDelivery{a1}, b...)
	all = append(all, a2)
	for _, limit := range []int{1, 2, 3, 100} {
		f.wantDeliveries(fmt.Sprintf("pending of all targets, %d a page", limit), optin.DeliveryQuery{Status: optin.DeliveryPending, Limit: limit}, all...)
		f.wantDeliveries(fmt.Sprintf("pending of sync, %d a page", limit), optin.DeliveryQuery{Target: "sync", Status: optin.DeliveryPending, Limit: limit}, b...)
	}
	f.wantDeliveries("pending of hook-a", pending, a1, a2)
	f.wantDeliveries("retired of all", optin.DeliveryQuery{Status: optin.DeliveryRetired}, a0)
	f.wantDeliveries("pending of a target without records", optin.DeliveryQuery{Target: "nobody", Status: optin.DeliveryPending})

	if _, err := f.store.Delivery(f.ctx, "sync", "no-such-event"); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("Delivery of a missing record: %v, want ErrNotFound", err)
	}
	if _, err := f.store.Delivery(f.ctx, "nobody", a0.EventID); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("Delivery of a target without records: %v, want ErrNotFound", err)
	}
	if _, err := f.store.OutboxCursor(f.ctx, "nobody"); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("OutboxCursor of a target never saved: %v, want ErrNotFound", err)
	}
}

// testOutboxBadInput: bad target names, records and queries are refused,
// and a save with one bad record writes nothing, its cursor neither.
func testOutboxBadInput(t *testing.T, h Harness) {
	f := openFixture(t, h)
	items := f.grants(2, "bad.example")
	good := f.delivery("hook", items[0], optin.DeliveryPending)
	f.save("hook", items[0].Pos, good)
	for _, name := range []string{"", "Hook", "hook_1", "hook/1", "hook 1", "{hook}", strings.Repeat("h", 41)} {
		d := good
		d.Target = name
		if err := f.store.SaveDeliveries(f.ctx, name, []optin.OutboxDelivery{d}, items[1].Pos); !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("SaveDeliveries to target %q: %v, want ErrBadInput", name, err)
		}
		if _, err := f.store.OutboxCursor(f.ctx, name); !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("OutboxCursor(%q): %v, want ErrBadInput", name, err)
		}
		if _, err := f.store.Delivery(f.ctx, name, good.EventID); !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("Delivery(%q): %v, want ErrBadInput", name, err)
		}
		if name != "" {
			if _, err := f.store.Deliveries(f.ctx, optin.DeliveryQuery{Target: name, Status: optin.DeliveryPending}); !errors.Is(err, optin.ErrBadInput) {
				t.Errorf("Deliveries of target %q: %v, want ErrBadInput", name, err)
			}
		}
	}
	if err := f.store.SaveDeliveries(f.ctx, strings.Repeat("h", 40), nil, ""); err != nil {
		t.Errorf("a target name of 40 characters: %v", err)
	}
	second := f.delivery("hook", items[1], optin.DeliveryPending)
	for what, bad := range map[string]optin.OutboxDelivery{
		"of another target": {Target: "other", EventID: "x", Status: optin.DeliveryPending},
		"without event id":  {Target: "hook", Status: optin.DeliveryPending},
		"of no status":      {Target: "hook", EventID: "x"},
		"of a status":       {Target: "hook", EventID: "x", Status: "done"},
	} {
		err := f.store.SaveDeliveries(f.ctx, "hook", []optin.OutboxDelivery{second, bad}, items[1].Pos)
		if !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("SaveDeliveries with a record %s: %v, want ErrBadInput", what, err)
		}
	}
	f.wantCursor("after refused saves", "hook", items[0].Pos)
	f.wantDeliveries("after refused saves", optin.DeliveryQuery{Target: "hook", Status: optin.DeliveryPending}, good)
	if err := f.store.SaveDeliveries(f.ctx, "hook", nil, "not a position"); !errors.Is(err, optin.ErrBadInput) {
		t.Errorf("SaveDeliveries with a bad cursor: %v, want ErrBadInput", err)
	}
	for _, q := range []optin.DeliveryQuery{
		{Status: ""},
		{Status: "done"},
		{Status: optin.DeliveryPending, Cursor: "!!not a cursor!!"},
		{Target: "hook", Status: optin.DeliveryPending, Cursor: "!!not a cursor!!"},
	} {
		if _, err := f.store.Deliveries(f.ctx, q); !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("Deliveries(%+v): %v, want ErrBadInput", q, err)
		}
	}
	// A cursor alone moves; records alone leave it.
	f.save("hook", items[1].Pos)
	f.wantCursor("after a cursor alone", "hook", items[1].Pos)
	f.save("hook", "", second)
	f.wantCursor("after a record alone", "hook", items[1].Pos)
	f.wantDeliveries("both", optin.DeliveryQuery{Target: "hook", Status: optin.DeliveryPending}, good, second)
}

// testPruneOutbox: PruneOutbox deletes the dead and retired records done
// before the cut, never a pending one, and the items older than the cut
// that every saved cursor has passed; a target that never saved a cursor
// holds nothing back.
func testPruneOutbox(t *testing.T, h Harness) {
	f := openFixture(t, h)
	items := f.grants(3, "prune.example")
	oldDead := f.delivery("hook", items[0], optin.DeliveryDead)
	oldRetired := f.delivery("hook", items[1], optin.DeliveryRetired)
	oldPending := f.delivery("hook", items[2], optin.DeliveryPending)
	lateRetired := f.delivery("sync", items[0], optin.DeliveryRetired)
	f.save("hook", items[2].Pos, oldDead, oldRetired, oldPending)
	f.save("fresh", "", f.delivery("fresh", items[0], optin.DeliveryPending))
	f.save("sync", items[0].Pos)

	f.clock.advance(48 * time.Hour)
	cut := f.clock.Now().Add(-24 * time.Hour)
	lateRetired.DoneAt = f.clock.Now()
	f.save("sync", "", lateRetired)
	newer := f.grants(1, "prune-later.example")

	n, err := f.store.PruneOutbox(f.ctx, cut)
	if err != nil || n != 3 {
		t.Fatalf("PruneOutbox: %d, %v; want 3 (two records, the item every cursor passed)", n, err)
	}
	if _, err := f.store.OutboxItem(f.ctx, items[0].Pos); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("OutboxItem of a pruned item: %v, want ErrNotFound", err)
	}
	rest := f.outboxAll("", 10)
	if len(rest) != 3 || rest[0].Pos != items[1].Pos || rest[2].Pos != newer[0].Pos {
		t.Errorf("the outbox after pruning: %d items, want the 2 a cursor holds and the newer", len(rest))
	}
	f.wantDeliveries("dead after pruning", optin.DeliveryQuery{Status: optin.DeliveryDead})
	f.wantDeliveries("retired after pruning", optin.DeliveryQuery{Status: optin.DeliveryRetired}, lateRetired)
	f.wantDeliveries("pending after pruning", optin.DeliveryQuery{Target: "hook", Status: optin.DeliveryPending}, oldPending)
	if _, err := f.store.Delivery(f.ctx, "hook", oldDead.EventID); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("Delivery of a pruned record: %v, want ErrNotFound", err)
	}

	// The cursor that held them moves on: they go; the newer item stays.
	f.save("sync", newer[0].Pos)
	if n, err := f.store.PruneOutbox(f.ctx, cut); err != nil || n != 2 {
		t.Errorf("PruneOutbox after the cursors moved: %d, %v; want 2", n, err)
	}
	if rest := f.outboxAll("", 10); len(rest) != 1 || rest[0].Pos != newer[0].Pos {
		t.Errorf("the outbox after pruning again: %d items, want the newer one", len(rest))
	}
	if n, err := f.store.PruneOutbox(f.ctx, cut); err != nil || n != 0 {
		t.Errorf("PruneOutbox once more: %d, %v; want 0", n, err)
	}
	// Reading goes on from a cursor whose item is gone.
	f.sameItems("after a pruned position", f.outboxAll(items[2].Pos, 10), []optin.Event{newer[0].Event})
	if end, err := f.store.OutboxEnd(f.ctx); err != nil || end != newer[0].Pos {
		t.Errorf("OutboxEnd after pruning: %q, %v; want %q", end, err, newer[0].Pos)
	}
}

// testOutboxMarks: a dedup mark is seen until its until by the store's
// clock, then not; a mark already past is not kept.
func testOutboxMarks(t *testing.T, h Harness) {
	f := openFixture(t, h)
	f.wantSeen("never marked", "k1", false)
	f.mark("k1", time.Hour)
	f.mark("k2", 3*time.Hour)
	f.mark("k3", -time.Minute)
	long := strings.Repeat("k", optin.MaxMarkKey)
	f.mark(long, time.Hour)
	f.wantSeen("marked", "k1", true)
	f.wantSeen("marked", long, true)
	f.wantSeen("marked already past", "k3", false)
	f.wantSeen("another key", "k4", false)
	f.clock.advance(2 * time.Hour)
	f.wantSeen("past its until", "k1", false)
	f.wantSeen("not past its until", "k2", true)
	f.mark("k1", time.Hour)
	f.wantSeen("marked again", "k1", true)
	if _, err := f.store.PruneOutbox(f.ctx, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.wantSeen("after pruning", "k2", true)
	f.clock.advance(2 * time.Hour)
	f.wantSeen("all past", "k2", false)
	f.wantSeen("all past", "k1", false)
	for _, bad := range []string{"", long + "k"} {
		if _, err := f.store.Seen(f.ctx, bad); !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("Seen of a key of %d bytes: %v, want ErrBadInput", len(bad), err)
		}
		if err := f.store.Mark(f.ctx, bad, f.clock.Now().Add(time.Hour)); !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("Mark of a key of %d bytes: %v, want ErrBadInput", len(bad), err)
		}
	}
}

// queueRecords files a record of each item of the outbox (pending and
// retired ones) and a dedup mark, for the scan for personal data.
func (f *fixture) queueRecords() {
	f.tb.Helper()
	items := f.outboxAll("", 100)
	if len(items) == 0 {
		f.tb.Fatal("the outbox is empty")
	}
	var ds []optin.OutboxDelivery
	for i, it := range items {
		st := optin.DeliveryPending
		if i%2 == 1 {
			st = optin.DeliveryRetired
		}
		ds = append(ds, f.delivery("hook", it, st))
	}
	f.save("hook", items[len(items)-1].Pos, ds...)
	f.mark("3b4c2d1e0f9a8b7c6d5e4f3a2b1c0d9e", time.Hour)
}
