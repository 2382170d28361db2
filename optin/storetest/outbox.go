package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"optinproxy/optin"
)

// outboxAll reads the whole outbox after pos, limit items a page, and
// checks that each page goes on exactly where the last ended.
func (f *fixture) outboxAll(after string, limit int) []optin.OutboxItem {
	f.tb.Helper()
	var out []optin.OutboxItem
	for range 1000 {
		p, err := f.store.OutboxRead(f.ctx, after, limit)
		if err != nil {
			f.tb.Fatalf("OutboxRead(%q, %d): %v", after, limit, err)
		}
		if len(p.Items) > limit {
			f.tb.Fatalf("OutboxRead(%q, %d): %d items", after, limit, len(p.Items))
		}
		if len(p.Items) == 0 {
			if p.Next != after {
				f.tb.Errorf("OutboxRead(%q) with nothing new: Next %q, want %q", after, p.Next, after)
			}
			return out
		}
		if last := p.Items[len(p.Items)-1].Pos; p.Next != last {
			f.tb.Errorf("OutboxRead(%q): Next %q, want the last item's position %q", after, p.Next, last)
		}
		out = append(out, p.Items...)
		after = p.Next
	}
	f.tb.Fatal("OutboxRead does not come to an end")
	return nil
}

// sameItems checks that items hold the events of want, in order, each
// with its subject's id.
func (f *fixture) sameItems(what string, items []optin.OutboxItem, want []optin.Event) {
	f.tb.Helper()
	got := make([]optin.Event, len(items))
	for i, it := range items {
		got[i] = it.Event
		if sid := f.keys.Get().SubjectID(it.Event.Subject); !it.Event.Erased && it.SubjectID != sid {
			f.tb.Errorf("%s: item %d (%s) has subject id %q, want %q", what, i, it.Event.Type, it.SubjectID, sid)
		}
		if it.Pos == "" {
			f.tb.Errorf("%s: item %d has no position", what, i)
		}
	}
	sameEvents(f.tb, what, got, want)
}

// testOutboxItems: every event of a main chain is queued, in the order
// written, and no receipt is; reading after the newest position finds
// nothing and keeps the position.
func testOutboxItems(t *testing.T, h Harness) {
	f := openFixture(t, h)
	empty, err := f.store.OutboxEnd(f.ctx)
	if err != nil || empty == "" {
		t.Fatalf("OutboxEnd of an empty store: %q, %v; want a position before the first item", empty, err)
	}
	if p, err := f.store.OutboxRead(f.ctx, empty, 10); err != nil || len(p.Items) != 0 || p.Next != empty {
		t.Fatalf("OutboxRead after the empty outbox's end: %+v, %v", p, err)
	}
	if p := f.outboxAll("", 10); len(p) != 0 {
		t.Fatalf("a new store's outbox holds %d items", len(p))
	}
	a, b := f.addr("outbox@example.com"), f.addr("other@example.com")
	var want []optin.Event
	want = append(want, f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour), Evidence: optin.Evidence{IP: "192.0.2.9"}})).Event)
	f.applied(f.receipt(a, optin.EventMessageRelayed, "<o1@crm.example>"))
	want = append(want, f.applied(f.suppress(b, optin.SuppressHardBounce)).Event)
	f.applied(f.receipt(b, optin.EventMessageBlocked, "<o2@crm.example>"))
	want = append(want, f.applied(f.withdraw(a, newsletter, optin.ConsentChange{Source: optin.SourceUnsubscribe})).Event)
	want = append(want, f.applied(f.unsuppress(b, optin.SuppressHardBounce)).Event)

	items := f.outboxAll("", 100)
	f.sameItems("the outbox", items, want)
	f.sameItems("the outbox after the empty outbox's end", f.outboxAll(empty, 100), want)
	if len(items) != len(want) {
		return
	}
	if len(items[0].Event.Details) == 0 {
		t.Errorf("the grant's item has no details: %s", describe(items[0].Event))
	}
	end, err := f.store.OutboxEnd(f.ctx)
	if err != nil || end != items[len(items)-1].Pos {
		t.Errorf("OutboxEnd = %q, %v; want the last item's position %q", end, err, items[len(items)-1].Pos)
	}
	// Receipts alone, in batches as the relay writes them, queue nothing.
	f.apply(f.receipt(a, optin.EventMessageRelayed, "<o3@crm.example>"), f.relayed(b, msg1, f.clock.Now().Add(window)))
	f.lookup(newsletter, []optin.Address{a, b})
	f.apply(f.receipt(a, optin.EventMessageRelayed, "<o4@crm.example>"), f.receipt(b, optin.EventMessageBlocked, "<o5@crm.example>"))
	if again, err := f.store.OutboxEnd(f.ctx); err != nil || again != end {
		t.Errorf("OutboxEnd after receipts only = %q, %v; want it unchanged, %q", again, err, end)
	}
	if more := f.outboxAll(end, 10); len(more) != 0 {
		t.Errorf("receipts queued %d items: %v", len(more), more)
	}
	// Each position reads on from exactly there.
	for i, it := range items {
		rest := f.outboxAll(it.Pos, 1)
		f.sameItems(fmt.Sprintf("after item %d", i), rest, want[i+1:])
		one, err := f.store.OutboxItem(f.ctx, it.Pos)
		if err != nil {
			t.Errorf("OutboxItem(%q): %v", it.Pos, err)
			continue
		}
		f.sameItems(fmt.Sprintf("OutboxItem(%q)", it.Pos), []optin.OutboxItem{one}, want[i:i+1])
	}
	for _, bad := range []string{"not a position", "-1", "1-2-3"} {
		if _, err := f.store.OutboxRead(f.ctx, bad, 10); !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("OutboxRead(%q): %v, want ErrBadInput", bad, err)
		}
	}
}

// testOutboxBatch: a batch's events are queued in the write that applies
// them, in the order of the changes, receipts among them left out; pages
// of any size go on exactly.
func testOutboxBatch(t *testing.T, h Harness) {
	f := openFixture(t, h)
	var addrs []optin.Address
	for i := range 12 {
		addrs = append(addrs, f.addr(fmt.Sprintf("batch%d@outbox.example", i)))
	}
	f.applied(f.grant(addrs[0], newsletter, optin.ConsentChange{At: f.ago(2 * time.Hour)}))
	start, err := f.store.OutboxEnd(f.ctx)
	if err != nil || start == "" {
		t.Fatalf("OutboxEnd after a grant: %q, %v", start, err)
	}
	var changes []optin.Change
	for i, a := range addrs {
		changes = append(changes, f.grant(a, offers, optin.ConsentChange{At: f.ago(time.Hour)}))
		changes = append(changes, f.receipt(a, optin.EventMessageRelayed, fmt.Sprintf("<b%d@crm.example>", i)))
		if i%3 == 0 {
			changes = append(changes, f.suppress(a, optin.SuppressComplaint))
		}
		if i%4 == 0 {
			changes = append(changes, f.withdraw(addrs[i/2], offers, optin.ConsentChange{}))
		}
	}
	var want []optin.Event
	for i, r := range f.apply(changes...) {
		if !r.Applied {
			t.Fatalf("change %d not applied: %+v", i, r)
		}
		if !r.Event.Type.IsReceipt() {
			want = append(want, r.Event)
		}
	}
	for _, limit := range []int{1, 2, 7, 100} {
		f.sameItems(fmt.Sprintf("the batch, %d a page", limit), f.outboxAll(start, limit), want)
	}
	all := f.outboxAll("", 5)
	if len(all) == 0 || all[0].Pos != start {
		t.Fatalf("the outbox from the start: %d items, the first not at %q", len(all), start)
	}
	f.sameItems("the outbox from the start, after the first", all[1:], want)
}

// testOutboxReopen: the outbox, the records and the cursors survive a
// restart.
func testOutboxReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness cannot reopen a store")
	}
	f := openFixture(t, h)
	a := f.addr("durable@outbox.example")
	want := []optin.Event{
		f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)})).Event,
		f.applied(f.suppress(a, optin.SuppressManual)).Event,
	}
	items := f.outboxAll("", 10)
	f.sameItems("before the restart", items, want)
	if len(items) != 2 {
		return
	}
	d := f.delivery("hook", items[0], optin.DeliveryPending)
	f.save("hook", items[0].Pos, d)
	f.mark("inbound-1", time.Hour)

	f.reopen(t, h)
	f.sameItems("after the restart", f.outboxAll("", 10), want)
	for i, it := range items {
		got, err := f.store.OutboxItem(f.ctx, it.Pos)
		if err != nil {
			t.Fatalf("OutboxItem(%q) after the restart: %v", it.Pos, err)
		}
		f.sameItems("OutboxItem after the restart", []optin.OutboxItem{got}, want[i:i+1])
	}
	if c, err := f.store.OutboxCursor(f.ctx, "hook"); err != nil || c != items[0].Pos {
		t.Errorf("OutboxCursor after the restart: %q, %v; want %q", c, err, items[0].Pos)
	}
	f.wantDelivery("after the restart", d)
	f.wantSeen("after the restart", "inbound-1", true)
	// Writing goes on after the last item.
	more := f.applied(f.withdraw(a, newsletter, optin.ConsentChange{})).Event
	f.sameItems("written after the restart", f.outboxAll(items[1].Pos, 10), []optin.Event{more})
}
