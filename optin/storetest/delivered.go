package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

// Message keys as the SMTP proxy makes them.
const (
	msg1 = "mid:<1.spring@crm.example>"
	msg2 = "mid:<2.spring@crm.example>"
	msg3 = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

// window is the dedup window the tests' marks last.
const window = 24 * time.Hour

// relayed is a message receipt that also marks the copy delivered, as
// the SMTP proxy records a copy the upstream accepted.
func (f *fixture) relayed(a optin.Address, message string, until time.Time) optin.Change {
	ch := f.receipt(a, optin.EventMessageRelayed, message)
	ch.Delivered = &optin.Delivery{Message: message, Until: until}
	return ch
}

// delivered looks message up for addrs (with the newsletter) and
// returns Delivered of each.
func (f *fixture) delivered(message string, addrs ...optin.Address) []bool {
	f.tb.Helper()
	out := make([]bool, len(addrs))
	for i, st := range f.lookupQuery(optin.LookupQuery{Purpose: newsletter, Addresses: addrs, Message: message}) {
		out[i] = st.Delivered
	}
	return out
}

// wantDelivered checks Delivered of message for addrs against want.
func (f *fixture) wantDelivered(what, message string, addrs []optin.Address, want ...bool) {
	f.tb.Helper()
	if got := f.delivered(message, addrs...); fmt.Sprint(got) != fmt.Sprint(want) {
		f.tb.Errorf("%s: Delivered of %.30q for %v = %v, want %v", what, message, addrs, got, want)
	}
}

// testDelivered: a receipt's mark is reported for its message and
// subject only, beside the record and suppressions, in one round trip;
// it adds no event.
func testDelivered(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, b, c, d := f.addr("anna@example.com"), f.addr("ben@example.com"), f.addr("cleo@example.com"), f.addr("dan@example.com")
	grant := f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
	until := f.clock.Now().Add(window)
	long := "mid:<" + strings.Repeat("x", 990) + "@crm.example>"
	changes := []optin.Change{
		f.relayed(a, msg1, until),
		f.relayed(b, msg1, until),
		f.receipt(c, optin.EventMessageRelayed, msg1), // a receipt without a mark
		f.relayed(a, msg2, until),
		f.relayed(d, long, until),
	}
	for i, r := range f.apply(changes...) {
		if !r.Applied || r.Event.Type != optin.EventMessageRelayed || r.Event.Subject != changes[i].Subject {
			t.Fatalf("receipt %d: %+v", i, r)
		}
	}
	f.applied(f.suppress(b, optin.SuppressHardBounce))

	all := []optin.Address{a, b, c, d, f.addr("nobody@example.com"), a}
	f.wantDelivered("the first message", msg1, all, true, true, false, false, false, true)
	f.wantDelivered("the second message", msg2, all, true, false, false, false, false, true)
	f.wantDelivered("a message sent to nobody", msg3, all, false, false, false, false, false, false)
	f.wantDelivered("a key differing in case", strings.ToUpper(msg1), all, false, false, false, false, false, false)
	f.wantDelivered("a long key", long, all, false, false, false, true, false, false)
	f.wantDelivered("a prefix of a long key", long[:len(long)-1], all, false, false, false, false, false, false)

	var got []optin.Standing
	q := optin.LookupQuery{Purpose: newsletter, Addresses: all, Message: msg1}
	if rt := roundTrips(h, f.store, func() { got = f.lookupQuery(q) }); rt >= 0 && rt != 1 {
		t.Errorf("Lookup of %d addresses with a message took %d round trips, want 1", len(all), rt)
	}
	sameRecord(t, "record beside a mark", got[0].Consent, grant.Consent)
	if !sameReasons(got[1].Suppressions, []optin.SuppressionReason{optin.SuppressHardBounce}) || got[2].Consent != nil || len(got[2].Suppressions) != 0 {
		t.Errorf("standings beside marks: %+v", got)
	}
	// A mark is of the message, not of a purpose.
	for i, st := range f.lookupQuery(optin.LookupQuery{Purpose: orders, Addresses: all[:3], Message: msg1}) {
		if want := i < 2; st.Delivered != want || st.Consent != nil {
			t.Errorf("Lookup(orders) with the first message: standing %d %+v, want Delivered %v", i, st, want)
		}
	}
	if hist := f.history(a); len(hist) != 3 {
		t.Errorf("history of a: %v, want the grant and two receipts", ids(hist))
	}
	f.wantVerified(4, 7)
}

// testDeliveredUntil: a mark counts until its Until by the store's
// clock, a later mark for the same message replaces it, and one already
// past is not reported.
func testDeliveredUntil(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, b := f.addr("until-a@example.com"), f.addr("until-b@example.com")
	both := []optin.Address{a, b}
	start := f.clock.Now()
	f.applied(f.relayed(a, msg1, start.Add(time.Hour)))
	f.applied(f.relayed(b, msg1, start.Add(3*time.Hour)))
	f.applied(f.relayed(a, msg2, start.Add(-time.Minute))) // the receipt is recorded all the same
	f.wantDelivered("fresh marks", msg1, both, true, true)
	f.wantDelivered("a mark already past", msg2, both, false, false)

	f.clock.advance(59 * time.Minute)
	f.wantDelivered("a minute before the first until", msg1, both, true, true)
	f.clock.advance(2 * time.Minute)
	f.wantDelivered("past the first until", msg1, both, false, true)

	// A retry marks a again; b's mark is extended.
	f.applied(f.relayed(a, msg1, f.clock.Now().Add(time.Hour)))
	f.applied(f.relayed(b, msg1, start.Add(5*time.Hour)))
	f.wantDelivered("marked again", msg1, both, true, true)
	f.clock.advance(3 * time.Hour) // start+4h: a's second mark is past, b's extended one holds
	f.wantDelivered("past the second mark of a, before b's extended until", msg1, both, false, true)
	f.applied(f.receipt(a, optin.EventMessageBlocked, msg3)) // a write after the marks expired
	f.clock.advance(2 * time.Hour)
	f.wantDelivered("past every until", msg1, both, false, false)
	f.wantVerified(2, 6)
}

// testDeliveredReopen: marks survive a restart, and still expire.
func testDeliveredReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness cannot reopen a store")
	}
	f := openFixture(t, h)
	a, b, c := f.addr("kept-a@example.com"), f.addr("kept-b@example.com"), f.addr("kept-c@example.com")
	until := f.clock.Now().Add(window)
	f.apply(f.relayed(a, msg1, until), f.relayed(b, msg2, until), f.receipt(c, optin.EventMessageRelayed, msg1))

	f.reopen(t, h)

	all := []optin.Address{a, b, c}
	f.wantDelivered("the first message after reopening", msg1, all, true, false, false)
	f.wantDelivered("the second message after reopening", msg2, all, false, true, false)
	f.clock.advance(window)
	f.wantDelivered("past the until after reopening", msg1, all, false, false, false)
}

// testDeliveredBatch: one Apply of receipts with marks for many
// subjects, in the round trips of any batch; every mark is there after.
func testDeliveredBatch(t *testing.T, h Harness) {
	f := openFixture(t, h)
	until := f.clock.Now().Add(window)
	subjects := make([]optin.Address, 600)
	var changes []optin.Change
	for i := range subjects {
		a := f.addr(fmt.Sprintf("rcpt%03d@batch.example", i))
		subjects[i] = a
		changes = append(changes, f.relayed(a, msg1, until))
		if i%3 == 0 {
			changes = append(changes, f.receipt(a, optin.EventMessageBlocked, msg2))
		}
		if i%6 == 1 {
			changes = append(changes, f.relayed(a, msg3, until))
		}
	}
	var rs []optin.Result
	rt := roundTrips(h, f.store, func() { rs = f.apply(changes...) })
	if budget := int64(len(changes)/50 + 5); rt > budget {
		t.Errorf("Apply of %d receipts took %d round trips, want at most %d", len(changes), rt, budget)
	}
	for i, r := range rs {
		if !r.Applied {
			t.Fatalf("receipt %d not applied", i)
		}
	}
	asked := append(append([]optin.Address{}, subjects...), f.addr("outsider@batch.example"))
	var got []optin.Standing
	q := optin.LookupQuery{Purpose: newsletter, Addresses: asked, Message: msg1}
	if rt := roundTrips(h, f.store, func() { got = f.lookupQuery(q) }); rt >= 0 && rt != 1 {
		t.Errorf("Lookup of %d addresses with a message took %d round trips, want 1", len(asked), rt)
	}
	for i, st := range got {
		if want := i < len(subjects); st.Delivered != want {
			t.Errorf("first message, standing %d (%s): Delivered %v", i, st.Address, st.Delivered)
		}
	}
	for _, m := range []string{msg2, msg3} {
		for i, ok := range f.delivered(m, subjects...) {
			if want := m == msg3 && i%6 == 1; ok != want {
				t.Errorf("%s, subject %d: Delivered %v, want %v", m, i, ok, want)
			}
		}
	}
	f.wantVerified(len(subjects), len(changes))
}

// testDeliveredBadInput: a mark without its message or its until fails
// the batch before anything is written.
func testDeliveredBadInput(t *testing.T, h Harness) {
	f := openFixture(t, h)
	x, y := f.addr("valid@bad.example"), f.addr("marked@bad.example")
	until := f.clock.Now().Add(window)
	for _, bad := range []optin.Delivery{{Until: until}, {Message: msg1}} {
		marked := f.relayed(y, msg1, until)
		marked.Delivered = &bad
		for _, batch := range [][]optin.Change{
			{f.grant(x, newsletter, optin.ConsentChange{}), f.relayed(x, msg1, until), marked},
			{marked, f.relayed(x, msg1, until)},
		} {
			_, err := f.store.Apply(f.ctx, batch)
			if !errors.Is(err, optin.ErrBadInput) {
				t.Errorf("Apply with Delivered %+v: %v, want ErrBadInput", bad, err)
			}
		}
	}
	for _, a := range []optin.Address{x, y} {
		if _, err := f.store.Subject(f.ctx, a, 10); !errors.Is(err, optin.ErrNotFound) {
			t.Errorf("a change of a failed batch was stored for %s: %v", a, err)
		}
	}
	f.wantDelivered("after the failed batches", msg1, []optin.Address{x, y}, false, false)
	f.wantVerified(0, 0)
}

// testDeliveredOnlyApplied: a mark is written with its change, and not
// when the change is ignored. The stores write it on any applied change,
// not only on a receipt.
func testDeliveredOnlyApplied(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("ignored@example.com")
	until := f.clock.Now().Add(window)
	f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
	f.applied(f.suppress(a, optin.SuppressManual))

	stale := f.grant(a, newsletter, optin.ConsentChange{At: f.ago(2 * time.Hour)})
	stale.Delivered = &optin.Delivery{Message: msg1, Until: until}
	again := f.suppress(a, optin.SuppressManual)
	again.Delivered = &optin.Delivery{Message: msg2, Until: until}
	for i, r := range f.apply(stale, again) {
		if r.Applied {
			t.Fatalf("ignored change %d applied", i)
		}
	}
	f.wantDelivered("the mark of a stale grant", msg1, []optin.Address{a}, false)
	f.wantDelivered("the mark of a suppression already there", msg2, []optin.Address{a}, false)

	contract := f.grant(a, orders, optin.ConsentChange{})
	contract.Delivered = &optin.Delivery{Message: msg3, Until: until}
	f.applied(contract)
	f.wantDelivered("the mark of an applied grant", msg3, []optin.Address{a}, true)
	f.wantVerified(1, 3)
}
