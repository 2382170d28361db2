package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"optinproxy/optin"
)

// erase erases a at once through the ledger and checks that it was.
func (f *fixture) erase(a optin.Address, notify bool) optin.ErasureResult {
	f.tb.Helper()
	r, err := f.ledger.Erase(f.ctx, a, optin.ErasureRequest{Actor: "storetest", Notify: notify})
	if err != nil {
		f.tb.Fatalf("Erase(%s): %v", a, err)
	}
	if !r.Erased || !r.Applied || r.Event.Type != optin.EventSubjectErased || !r.At.IsZero() {
		f.tb.Fatalf("Erase(%s) = %+v; want erased now, with its subject.erased event", a, r)
	}
	return r
}

// wantErased checks what an erasure leaves of a: no consents, the erased
// suppression alone, events that no longer open, a lookup that finds the
// suppression and nothing else.
func (f *fixture) wantErased(a optin.Address, message string) {
	f.tb.Helper()
	v := f.subject(a, 100)
	if !v.Erased || len(v.Consents) != 0 || !v.ErasureAt.IsZero() {
		f.tb.Errorf("%s after erasure: erased %v, consents %+v, erasure at %v; want erased, none, none", a, v.Erased, v.Consents, v.ErasureAt)
	}
	if len(v.Suppressions) != 1 || v.Suppressions[0].Reason != optin.SuppressErased {
		f.tb.Errorf("%s after erasure: suppressions %+v; want erased alone", a, v.Suppressions)
	}
	if len(v.Events) == 0 {
		f.tb.Errorf("%s after erasure: no events; the chains stay", a)
	}
	for _, e := range f.history(a) {
		if !e.Erased || !e.Subject.IsZero() || len(e.Details) > 0 {
			f.tb.Errorf("%s after erasure: an event still reads: %s", a, describe(e))
		}
	}
	st := f.lookupQuery(optin.LookupQuery{Purpose: newsletter, Addresses: []optin.Address{a}, Message: message})[0]
	if st.Consent != nil || !sameReasons(st.Suppressions, []optin.SuppressionReason{optin.SuppressErased}) || st.Delivered {
		f.tb.Errorf("Lookup(%s) after erasure = consent %v, suppressions %v, delivered %v; want none, erased, false",
			a, describeRecord(st.Consent), st.Suppressions, st.Delivered)
	}
	d := optin.Decide(purposes[orders], st, false, f.clock.Now())
	if d.Allow || d.Reason != optin.SuppressedReason(optin.SuppressErased) {
		f.tb.Errorf("transactional mail to %s after erasure: %s; want block suppressed:erased", a, d)
	}
}

// testEraseNow: an erasure carried out at once leaves the erased state
// only, blocks the address, keeps every chain verifiable, refuses grants
// (alone and in a batch, which goes on), records the relay's receipts
// without storing the address again, and lets the person come back once
// the erased suppression is removed, with a fresh key.
func testEraseNow(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, other := f.addr("Erase.Me@Example.com"), f.addr("stays@example.com")
	until := f.clock.Now().Add(window)
	f.applied(f.grant(a, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.90", Text: "Yes"}}))
	f.applied(f.grant(a, offers, optin.ConsentChange{}))
	f.applied(f.suppress(a, optin.SuppressHardBounce))
	f.applied(f.relayed(a, "mid:<e1@crm.example>", until))
	f.applied(f.receipt(a, optin.EventMessageBlocked, "<e2@crm.example>"))
	if _, err := f.ledger.Erase(f.ctx, a, optin.ErasureRequest{At: f.base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f.applied(f.grant(other, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.91"}}))
	f.applied(f.relayed(other, "mid:<e1@crm.example>", until))

	res := f.erase(a, false)
	if res.Event.Subject != a {
		t.Errorf("the erasure's event names %s, want %s", res.Event.Subject, a)
	}
	f.wantErased(a, "mid:<e1@crm.example>")
	if r := f.verify(); len(r.Broken) != 0 || r.Subjects != 2 {
		t.Errorf("Verify after the erasure: %+v; want 2 subjects, none broken", r)
	}
	if due, err := f.store.DueErasures(f.ctx, f.base.Add(48*time.Hour), 10); err != nil || len(due) != 0 {
		t.Errorf("DueErasures after the erasure: %+v, %v; the schedule goes with it", due, err)
	}
	if again, err := f.ledger.Erase(f.ctx, a, optin.ErasureRequest{}); err != nil || again.Applied || !again.Erased {
		t.Errorf("erasing again: %+v, %v; want nothing recorded, erased", again, err)
	}

	// Grants are refused, alone and in a batch that goes on.
	if _, err := f.ledger.Grant(f.ctx, a, newsletter, optin.ConsentChange{}); !errors.Is(err, optin.ErrErased) {
		t.Errorf("a grant for the erased address: %v; want ErrErased", err)
	}
	if _, err := f.ledger.Grant(f.ctx, a, doi, optin.ConsentChange{}); !errors.Is(err, optin.ErrErased) {
		t.Errorf("a pending record for the erased address: %v; want ErrErased", err)
	}
	rs := f.apply(f.grant(other, offers, optin.ConsentChange{}), f.grant(a, newsletter, optin.ConsentChange{Source: optin.SourceImport}),
		f.withdraw(a, newsletter, optin.ConsentChange{}), f.suppress(a, optin.SuppressComplaint))
	if !rs[0].Applied || !errors.Is(rs[1].Refused, optin.ErrErased) || rs[1].Applied || rs[2].Applied || rs[3].Applied {
		t.Errorf("a batch with the erased address: %+v; want the other's grant applied, the erased one's refused, the rest ignored", rs)
	}
	// The relay's block is recorded without a key or the address.
	blocked := f.applied(f.receipt(a, optin.EventMessageBlocked, "<e3@crm.example>"))
	if !blocked.Erased {
		t.Errorf("a receipt for the erased address: %+v; the subject stays erased", blocked)
	}
	f.wantErased(a, "")
	if v := f.subject(other, 10); len(v.Consents) != 2 || v.Consents[0].Evidence == nil || v.Consents[0].Evidence.IP != "192.0.2.91" {
		t.Errorf("the other subject after the erasure: %+v", v.Consents)
	}
	f.wantDelivered("the other subject's mark", "mid:<e1@crm.example>", []optin.Address{other}, true)
	for _, s := range walkSuppressions(t, f, 10) {
		if s.Reason == optin.SuppressErased || s.Subject == a {
			t.Errorf("the suppressions listing names the erased address: %+v", s)
		}
	}

	// The person comes back: the erased suppression goes, a fresh key.
	erasedHistory := len(f.history(a))
	if _, err := f.ledger.Unsuppress(f.ctx, a, optin.SuppressErased, "storetest"); err != nil {
		t.Fatal(err)
	}
	f.applied(f.grant(a, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.92"}}))
	f.applied(f.receipt(a, optin.EventMessageRelayed, "<e4@crm.example>"))
	v := f.subject(a, 100)
	if v.Erased || len(v.Suppressions) != 0 || len(v.Consents) != 1 || v.Consents[0].Evidence == nil || v.Consents[0].Evidence.IP != "192.0.2.92" {
		t.Errorf("back after the erasure: erased %v, suppressions %+v, consents %+v", v.Erased, v.Suppressions, v.Consents)
	}
	history := f.history(a)
	if len(history) != erasedHistory+3 {
		t.Fatalf("back after the erasure: %d events, want %d", len(history), erasedHistory+3)
	}
	for i, e := range history {
		if fresh := i >= erasedHistory; e.Erased == fresh || fresh && e.Subject != a {
			t.Errorf("event %d of %d after coming back: %s; want the %d before unreadable, the rest readable", i, len(history), describe(e), erasedHistory)
		}
	}
	checkChain(t, history)
	if r := f.verify(); len(r.Broken) != 0 {
		t.Errorf("Verify after coming back: %+v", r.Broken)
	}
}

// testEraseUnknown: erasing an address nothing is stored about records
// its erased suppression, so that it is not mailed or imported later,
// without storing the address.
func testEraseUnknown(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("never.seen@example.com")
	f.erase(a, false)
	f.wantErased(a, "")
	if _, err := f.ledger.Grant(f.ctx, a, newsletter, optin.ConsentChange{Source: optin.SourceImport}); !errors.Is(err, optin.ErrErased) {
		t.Errorf("an import of the erased address: %v; want ErrErased", err)
	}
	f.wantVerified(1, 1)
}

// testScheduledErasure: an erasure set for later is not carried out
// before its time, shows in the subject, can be moved and cancelled, and
// is carried out by the sweeper once due; a cancelled one is not.
func testScheduledErasure(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, b := f.addr("later@example.com"), f.addr("cancelled@example.com")
	for _, x := range []optin.Address{a, b} {
		f.applied(f.grant(x, newsletter, optin.ConsentChange{}))
	}
	at := f.base.Add(2 * time.Hour)
	for _, x := range []optin.Address{a, b} {
		r, err := f.ledger.Erase(f.ctx, x, optin.ErasureRequest{At: at.Add(-time.Hour), Actor: "storetest"})
		if err != nil || r.Erased || !r.Applied || !r.At.Equal(at.Add(-time.Hour)) || r.Event.Type != optin.EventErasureScheduled {
			t.Fatalf("scheduling the erasure of %s: %+v, %v", x, r, err)
		}
	}
	// Moved later, then asked again for the same time: nothing new.
	if r, err := f.ledger.Erase(f.ctx, a, optin.ErasureRequest{At: at}); err != nil || !r.Applied || !r.At.Equal(at) {
		t.Fatalf("moving the erasure: %+v, %v", r, err)
	}
	if r, err := f.ledger.Erase(f.ctx, a, optin.ErasureRequest{At: at}); err != nil || r.Applied || !r.At.Equal(at) {
		t.Errorf("scheduling the same time again: %+v, %v; want nothing recorded", r, err)
	}
	if v := f.subject(a, 10); v.Erased || !v.ErasureAt.Equal(at) || len(v.Consents) != 1 {
		t.Errorf("the subject with an erasure scheduled: erased %v, at %v, consents %d", v.Erased, v.ErasureAt, len(v.Consents))
	}
	if _, err := f.ledger.CancelErasure(f.ctx, b, "storetest"); err != nil {
		t.Fatalf("cancelling: %v", err)
	}
	if _, err := f.ledger.CancelErasure(f.ctx, b, "storetest"); !errors.Is(err, optin.ErrNoErasure) || !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("cancelling none: %v; want ErrNoErasure, a not-found", err)
	}
	if v := f.subject(b, 10); !v.ErasureAt.IsZero() {
		t.Errorf("the cancelled erasure still shows: %v", v.ErasureAt)
	}

	// Before its time: nothing is due, the sweeper erases nothing.
	if due, err := f.store.DueErasures(f.ctx, f.clock.Now(), 10); err != nil || len(due) != 0 {
		t.Errorf("DueErasures before the time: %+v, %v", due, err)
	}
	if sw, err := f.ledger.EraseDue(f.ctx, false); err != nil || sw != (optin.ErasureSweep{}) {
		t.Errorf("EraseDue before the time: %+v, %v", sw, err)
	}
	if v := f.subject(a, 10); v.Erased {
		t.Fatal("erased before its time")
	}

	f.clock.advance(3 * time.Hour)
	due, err := f.store.DueErasures(f.ctx, f.clock.Now(), 10)
	if err != nil || len(due) != 1 || due[0].Subject != a || !due[0].At.Equal(at) {
		t.Fatalf("DueErasures after the time: %+v, %v; want %s at %v", due, err, a, at)
	}
	sw, err := f.ledger.EraseDue(f.ctx, false)
	if err != nil || sw.Erased != 1 {
		t.Fatalf("EraseDue after the time: %+v, %v", sw, err)
	}
	f.wantErased(a, "")
	if v := f.subject(b, 10); v.Erased || len(v.Consents) != 1 {
		t.Errorf("the cancelled one was erased: %+v", v)
	}
	erasures := f.events(optin.EventQuery{Type: optin.EventSubjectErased})
	if len(erasures) != 1 || erasures[0].Actor != optin.ActorSweeper {
		t.Errorf("subject.erased events: %d (%v); want 1, by %s", len(erasures), erasures, optin.ActorSweeper)
	}
	if r := f.verify(); len(r.Broken) != 0 {
		t.Errorf("Verify after the sweep: %+v", r.Broken)
	}
}

// testSweepersOnce: two sweepers at once erase each due subject once.
func testSweepersOnce(t *testing.T, h Harness) {
	f := openFixture(t, h)
	var addrs []optin.Address
	at := f.base.Add(time.Hour)
	for i := range 30 {
		a := f.addr(fmt.Sprintf("sweep%02d@example.com", i))
		addrs = append(addrs, a)
		f.applied(f.grant(a, newsletter, optin.ConsentChange{}))
		if _, err := f.ledger.Erase(f.ctx, a, optin.ErasureRequest{At: at}); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.advance(2 * time.Hour)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for range 2 {
		wg.Go(func() {
			sw, err := f.ledger.EraseDue(f.ctx, false)
			if err != nil {
				t.Errorf("EraseDue: %v", err)
			}
			mu.Lock()
			total += sw.Erased
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != len(addrs) {
		t.Errorf("two sweepers erased %d in all, want %d", total, len(addrs))
	}
	for _, a := range addrs {
		n := 0
		for _, e := range f.history(a) {
			if e.Type == optin.EventSubjectErased {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d subject.erased events, want 1", a, n)
		}
	}
}

// testErasureNotice: with Notify, the outbox item of the subject.erased
// event gives the address to the dispatcher while the subject's events
// no longer read; without, it gives none; the notice goes with the item.
// Items of a subject that came back read as they were sealed.
func testErasureNotice(t *testing.T, h Harness) {
	f := openFixture(t, h)
	told, silent := f.addr("Told@Example.com"), f.addr("silent@example.com")
	start, err := f.store.OutboxEnd(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.applied(f.grant(told, newsletter, optin.ConsentChange{}))
	f.applied(f.grant(silent, newsletter, optin.ConsentChange{}))
	f.erase(told, true)
	f.erase(silent, false)
	items := f.outboxAll(start, 100)
	if len(items) != 4 {
		t.Fatalf("outbox: %d items, want 4", len(items))
	}
	want := []struct {
		t       optin.EventType
		subject optin.Address
	}{{optin.EventConsentGranted, optin.Address{}}, {optin.EventConsentGranted, optin.Address{}},
		{optin.EventSubjectErased, told}, {optin.EventSubjectErased, optin.Address{}}}
	for i, it := range items {
		if it.Event.Type != want[i].t || !it.Event.Erased || it.Event.Subject != want[i].subject || len(it.Event.Details) > 0 {
			t.Errorf("item %d: %s; want %s, erased, subject %q", i, describe(it.Event), want[i].t, want[i].subject)
		}
	}
	again, err := f.store.OutboxItem(f.ctx, items[2].Pos)
	if err != nil || again.Event.Subject != told || again.SubjectID != f.keys.Get().SubjectID(told) {
		t.Errorf("OutboxItem of the notice: %+v, %v", again, err)
	}

	// The person comes back: the old items stay unreadable, new ones read.
	if _, err := f.ledger.Unsuppress(f.ctx, silent, optin.SuppressErased, "storetest"); err != nil {
		t.Fatal(err)
	}
	f.applied(f.grant(silent, newsletter, optin.ConsentChange{}))
	items = f.outboxAll(start, 100)
	if len(items) != 6 || items[1].Event.Subject != (optin.Address{}) || !items[1].Event.Erased ||
		items[5].Event.Erased || items[5].Event.Subject != silent {
		t.Errorf("outbox after coming back: %d items, the old grant %s, the new %s", len(items), describe(items[1].Event), describe(items[len(items)-1].Event))
	}

	// Pruned with its item.
	f.clock.advance(time.Hour)
	if _, err := f.store.PruneOutbox(f.ctx, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.OutboxItem(f.ctx, items[2].Pos); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("the notice's item after pruning: %v; want ErrNotFound", err)
	}
}
