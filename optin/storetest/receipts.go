package storetest

import (
	"fmt"
	"testing"
	"time"

	"optinproxy/optin"
)

// testReceiptChain: receipts go to a chain of their own beside the main
// chain; the history merges the two in order, each chain links its own
// events, and Verify counts both and names a tampered receipt.
func testReceiptChain(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, b := f.addr("receipts@example.com"), f.addr("only-receipts@example.com")
	var ra []optin.Result
	ra = append(ra, f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour), Evidence: optin.Evidence{IP: "192.0.2.4"}})))
	ra = append(ra, f.applied(f.receipt(a, optin.EventMessageRelayed, "<r1@crm.example>")))
	ra = append(ra, f.applied(f.receipt(a, optin.EventMessageBlocked, "<r2@crm.example>")))
	ra = append(ra, f.applied(f.withdraw(a, newsletter, optin.ConsentChange{})))
	ra = append(ra, f.applied(f.receipt(a, optin.EventMessageBlocked, "<r3@crm.example>")))
	rb := []optin.Result{f.applied(f.receipt(b, optin.EventMessageRelayed, "<r1@crm.example>"))}

	if ra[1].Event.Prev != "" || ra[2].Event.Prev != ra[1].Event.Hash || ra[4].Event.Prev != ra[2].Event.Hash {
		t.Errorf("receipts do not chain among themselves: %s", describeAll(resultEvents(ra)))
	}
	if ra[3].Event.Prev != ra[0].Event.Hash {
		t.Errorf("the withdrawal does not follow the grant in the main chain: %s", describe(ra[3].Event))
	}
	want := resultEvents(ra)
	sameEvents(t, "Subject(recent 10)", f.subject(a, 10).Events, want)
	sameEvents(t, "Subject(recent 2)", f.subject(a, 2).Events, want[3:])
	sameEvents(t, "Events(subject)", f.history(a), want)
	checkChain(t, f.history(a))
	sameEvents(t, "Events(subject only in receipts)", f.history(b), resultEvents(rb))
	if v := f.subject(b, 10); len(v.Consents) != 0 || len(v.Events) != 1 {
		t.Errorf("a subject known from a receipt: %+v", v)
	}
	blocked := f.events(optin.EventQuery{Type: optin.EventMessageBlocked})
	sameEvents(t, "Events(type message.blocked)", blocked, []optin.Event{ra[2].Event, ra[4].Event})
	all := f.events(optin.EventQuery{})
	if len(all) != len(ra)+len(rb) {
		t.Errorf("the log holds %d events, %d were applied", len(all), len(ra)+len(rb))
	}
	r := f.verify()
	if r.Subjects != 2 || r.Events != 6 || r.Receipts != 4 || len(r.Broken) != 0 {
		t.Errorf("Verify = %+v; want 2 subjects, 6 events of which 4 receipts, none broken", r)
	}
	if h.Tamper != nil {
		h.Tamper(t, f.store, a, true)
		r := f.verify()
		if len(r.Broken) != 1 || r.Broken[0].Subject != a.String() {
			t.Errorf("Verify after tampering with a receipt of %s: %+v", a, r)
		}
	}
}

// testReceiptOnce: a change marked Once (a journal's replay) is skipped
// when its event is in the chain already, and applied when not.
func testReceiptOnce(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, b := f.addr("once@example.com"), f.addr("never@example.com")
	until := f.clock.Now().Add(window)
	first := f.relayed(a, msg1, until)
	f.applied(first)
	f.applied(f.receipt(a, optin.EventMessageBlocked, "<later@crm.example>"))
	again := first
	again.Once = true
	missed := f.relayed(b, msg1, until)
	missed.Once = true
	rs := f.apply(again, missed)
	if rs[0].Applied || !rs[1].Applied {
		t.Errorf("replay: the one already written applied=%v (want false), the missing one applied=%v (want true)", rs[0].Applied, rs[1].Applied)
	}
	if got := len(f.history(a)); got != 2 {
		t.Errorf("%s: %d events after a replay, want 2", a, got)
	}
	if got := len(f.history(b)); got != 1 {
		t.Errorf("%s: %d events after a replay, want 1", b, got)
	}
	f.wantDelivered("after the replay", msg1, []optin.Address{a, b}, true, true)
	f.wantVerified(2, 3)
}

// testReceiptRoundTrips: the relay's receipts for the recipients it just
// looked up are one write round trip, whatever their number, for
// subjects known and new alike.
func testReceiptRoundTrips(t *testing.T, h Harness) {
	if h.RoundTrips == nil {
		t.Skip("the store has no round trips to count")
	}
	f := openFixture(t, h)
	var addrs []optin.Address
	for i := range 40 {
		a := f.addr(fmt.Sprintf("rt%d@example.com", i))
		if i%2 == 0 {
			f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
		}
		addrs = append(addrs, a)
	}
	until := f.clock.Now().Add(window)
	for _, n := range []int{1, 7, 40} {
		msg := fmt.Sprintf("mid:<rt%d@crm.example>", n)
		var changes []optin.Change
		trips := roundTrips(h, f.store, func() {
			for _, st := range f.lookupQuery(optin.LookupQuery{Purpose: newsletter, Addresses: addrs[:n], Message: msg}) {
				changes = append(changes, f.relayed(st.Address, msg, until))
			}
		})
		if trips != 1 {
			t.Errorf("lookup of %d addresses: %d round trips, want 1", n, trips)
		}
		trips = roundTrips(h, f.store, func() { f.apply(changes...) })
		if trips != 1 {
			t.Errorf("receipts of %d looked-up addresses: %d round trips, want 1", n, trips)
		}
	}
	// Two messages' receipts to one subject in one batch, as a busy
	// relay's batcher joins them, still one.
	a := addrs[1]
	f.lookup(newsletter, []optin.Address{a})
	trips := roundTrips(h, f.store, func() {
		f.apply(f.receipt(a, optin.EventMessageRelayed, "<j1@crm.example>"), f.receipt(a, optin.EventMessageBlocked, "<j2@crm.example>"))
	})
	if trips != 1 {
		t.Errorf("two receipts of one looked-up subject: %d round trips, want 1", trips)
	}
	checkChain(t, f.history(a))
	r := f.verify()
	if len(r.Broken) != 0 || r.Receipts != 1+7+40+2 {
		t.Errorf("Verify = %+v, want %d receipts and none broken", r, 1+7+40+2)
	}
}

// testPruneReceipts: receipts older than the retention go, the evidence
// of consent stays, and every chain still verifies from the hash of its
// last pruned receipt on; a chain pruned empty goes on from there.
func testPruneReceipts(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, b := f.addr("prune@example.com"), f.addr("gone@example.com")
	grant := f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
	f.applied(f.receipt(a, optin.EventMessageRelayed, "<old1@crm.example>"))
	old2 := f.applied(f.receipt(a, optin.EventMessageRelayed, "<old2@crm.example>"))
	oldB := f.applied(f.receipt(b, optin.EventMessageBlocked, "<old1@crm.example>"))
	f.clock.advance(100 * 24 * time.Hour)
	cut := f.clock.Now().Add(-50 * 24 * time.Hour)
	new1 := f.applied(f.receipt(a, optin.EventMessageRelayed, "<new1@crm.example>"))
	withdraw := f.applied(f.withdraw(a, newsletter, optin.ConsentChange{}))

	n, err := f.store.PruneReceipts(f.ctx, cut)
	if err != nil || n != 3 {
		t.Fatalf("PruneReceipts: %d, %v; want 3", n, err)
	}
	hist := f.history(a)
	sameEvents(t, "history after pruning", hist, []optin.Event{grant.Event, new1.Event, withdraw.Event})
	checkChainFrom(t, hist, old2.Event.Hash)
	if v := f.subject(a, 10); len(v.Consents) != 1 || v.Consents[0].Evidence == nil {
		t.Errorf("the consent and its evidence after pruning: %+v", v.Consents)
	}
	if got := f.history(b); len(got) != 0 {
		t.Errorf("%s: %d events after its only receipt was pruned", b, len(got))
	}
	if got := f.events(optin.EventQuery{}); len(got) != 3 {
		t.Errorf("the log holds %d events after pruning, want 3", len(got))
	}
	r := f.verify()
	if r.Subjects != 2 || r.Events != 3 || r.Receipts != 1 || len(r.Broken) != 0 {
		t.Errorf("Verify after pruning = %+v; want 2 subjects, 3 events of which 1 receipt, none broken", r)
	}
	if n, err := f.store.PruneReceipts(f.ctx, cut); err != nil || n != 0 {
		t.Errorf("PruneReceipts again: %d, %v; want 0", n, err)
	}
	// The emptied chain goes on from its last pruned receipt.
	next := f.applied(f.receipt(b, optin.EventMessageRelayed, "<next@crm.example>"))
	if next.Event.Prev != oldB.Event.Hash {
		t.Errorf("a receipt after its chain was pruned empty: Prev %.12s, want the pruned one's hash %.12s", next.Event.Prev, oldB.Event.Hash)
	}
	f.wantVerified(2, 4)
	if h.Reopen != nil {
		f.reopen(t, h)
		f.wantVerified(2, 4)
		checkChainFrom(t, f.history(a), old2.Event.Hash)
	}
}

func describeAll(events []optin.Event) string {
	s := ""
	for _, e := range events {
		s += "\n  " + describe(e)
	}
	return s
}

// testLease: the lease of a job is this instance's, again and again while
// it holds it.
func testLease(t *testing.T, h Harness) {
	f := openFixture(t, h)
	for i := range 3 {
		held, err := f.store.Lease(f.ctx, "prune-receipts", time.Minute)
		if err != nil || !held {
			t.Fatalf("Lease %d of an instance alone: %v %v", i, held, err)
		}
	}
}
