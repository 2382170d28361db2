package storetest

import (
	"fmt"
	"testing"
	"time"

	"optinproxy/optin"
)

// standing is what Lookup should answer for one address.
type standing struct {
	consent *optin.Consent // for newsletter
	reasons []optin.SuppressionReason
}

// seedLookup stores n subjects of five kinds and returns their addresses
// and what Lookup of newsletter should answer for each.
func seedLookup(f *fixture, n int) ([]optin.Address, map[optin.Address]*standing) {
	f.tb.Helper()
	addrs := make([]optin.Address, n)
	want := map[optin.Address]*standing{}
	var changes []optin.Change
	for i := range n {
		a := f.addr(fmt.Sprintf("user%04d@lookup.example", i))
		addrs[i], want[a] = a, &standing{}
		switch i % 5 {
		case 0: // granted
			changes = append(changes, f.grant(a, newsletter, optin.ConsentChange{At: f.ago(2 * time.Hour)}))
		case 1: // granted, then withdrawn
			changes = append(changes,
				f.grant(a, newsletter, optin.ConsentChange{At: f.ago(2 * time.Hour)}),
				f.withdraw(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
		case 2: // granted and bounced
			changes = append(changes,
				f.grant(a, newsletter, optin.ConsentChange{At: f.ago(2 * time.Hour)}),
				f.suppress(a, optin.SuppressHardBounce))
			want[a].reasons = []optin.SuppressionReason{optin.SuppressHardBounce}
		case 3: // another purpose only
			changes = append(changes, f.grant(a, orders, optin.ConsentChange{At: f.ago(2 * time.Hour)}))
		case 4: // suppressed twice, no record
			changes = append(changes, f.suppress(a, optin.SuppressUnsubscribedAll), f.suppress(a, optin.SuppressComplaint))
			want[a].reasons = []optin.SuppressionReason{optin.SuppressUnsubscribedAll, optin.SuppressComplaint}
		}
	}
	for start := 0; start < len(changes); start += 500 {
		batch := changes[start:min(start+500, len(changes))]
		for i, r := range f.apply(batch...) {
			if !r.Applied {
				f.tb.Fatalf("seed change %d not applied", start+i)
			}
			if c := batch[i].Consent; c != nil && c.Purpose == newsletter {
				want[batch[i].Subject].consent = r.Consent
			}
		}
	}
	return addrs, want
}

// testLookup: Lookup answers many recipients in order, unknown ones with
// nothing, in one round trip whatever their number, also when asked
// about a message.
func testLookup(t *testing.T, h Harness) {
	f := openFixture(t, h)
	known, want := seedLookup(f, 1000)
	for _, n := range []int{1, 10, 100, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			addrs := make([]optin.Address, n)
			for i := range addrs {
				if i%10 == 3 {
					addrs[i] = f.addr(fmt.Sprintf("nobody%04d@lookup.example", i))
				} else {
					addrs[i] = known[(i*7)%len(known)]
				}
			}
			var got, withMessage []optin.Standing
			if rt := roundTrips(h, f.store, func() { got = f.lookup(newsletter, addrs) }); rt >= 0 && rt != 1 {
				t.Errorf("Lookup of %d addresses took %d round trips, want 1", n, rt)
			}
			q := optin.LookupQuery{Purpose: newsletter, Addresses: addrs, Message: "mid:<never@lookup.example>"}
			if rt := roundTrips(h, f.store, func() { withMessage = f.lookupQuery(q) }); rt >= 0 && rt != 1 {
				t.Errorf("Lookup of %d addresses with a message took %d round trips, want 1", n, rt)
			}
			for i, st := range withMessage {
				if st.Delivered {
					t.Errorf("standing %d (%s): Delivered a message never sent", i, st.Address)
				}
				sameRecord(t, fmt.Sprintf("standing %d (%s) with a message", i, addrs[i]), st.Consent, got[i].Consent)
				if !sameReasons(st.Suppressions, got[i].Suppressions) {
					t.Errorf("standing %d (%s) with a message: suppressions %v, without %v", i, addrs[i], st.Suppressions, got[i].Suppressions)
				}
			}
			for i, st := range got {
				if st.Address != addrs[i] {
					t.Fatalf("standing %d is of %s, asked %s: out of order", i, st.Address, addrs[i])
				}
				w := want[addrs[i]]
				if w == nil {
					w = &standing{}
				}
				sameRecord(t, fmt.Sprintf("standing %d (%s)", i, addrs[i]), st.Consent, w.consent)
				if !sameReasons(st.Suppressions, w.reasons) {
					t.Errorf("standing %d (%s): suppressions %v, want %v", i, addrs[i], st.Suppressions, w.reasons)
				}
			}
		})
	}

	if got := f.lookup(newsletter, nil); len(got) != 0 {
		t.Errorf("Lookup of no addresses: %+v", got)
	}
	// The same address twice, and another purpose.
	got := f.lookup(orders, []optin.Address{known[3], known[3], known[0]})
	if got[0].Consent == nil || got[0].Consent.Status != optin.StatusGranted || got[0].Consent.Purpose != orders ||
		got[1].Consent == nil || got[1].Consent.EventID != got[0].Consent.EventID || got[2].Consent != nil {
		t.Errorf("Lookup(orders) of [kind 3, kind 3, kind 0]: %+v", got)
	}
}

// testApplyBatch: 1000 changes in one Apply, some to the same subject,
// answered in order in few round trips; then a batch of stale changes,
// all ignored.
func testApplyBatch(t *testing.T, h Harness) {
	f := openFixture(t, h)
	var changes []optin.Change
	var withdrawn []optin.Address
	for j := range 900 {
		a := f.addr(fmt.Sprintf("batch%03d@example.com", j))
		changes = append(changes, f.grant(a, newsletter, optin.ConsentChange{At: f.ago(2 * time.Hour), Source: optin.SourceImport}))
		if j%9 == 0 {
			changes = append(changes, f.withdraw(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
			withdrawn = append(withdrawn, a)
		}
	}
	if len(changes) != 1000 {
		t.Fatalf("built %d changes", len(changes))
	}
	var rs []optin.Result
	rt := roundTrips(h, f.store, func() { rs = f.apply(changes...) })
	if budget := int64(len(changes)/50 + 5); rt > budget {
		t.Errorf("Apply of %d changes took %d round trips, want at most %d", len(changes), rt, budget)
	}
	last := map[optin.Address]optin.Result{}
	for i, r := range rs {
		ch := changes[i]
		if !r.Applied || r.Consent == nil || r.Event.Subject != ch.Subject || r.Consent.Status != ch.Consent.Status ||
			!r.Consent.UpdatedAt.Equal(ch.Consent.UpdatedAt) || r.Consent.EventID != r.Event.ID {
			t.Fatalf("result %d does not answer change %d (%s %s): %+v", i, i, ch.Subject, ch.Consent.Status, r)
		}
		if prev, ok := last[ch.Subject]; ok && r.Event.Prev != prev.Event.Hash {
			t.Errorf("result %d: second change of %s in the batch not chained after the first", i, ch.Subject)
		}
		last[ch.Subject] = r
	}
	f.wantVerified(900, 1000)

	var stale []optin.Change
	for _, a := range withdrawn {
		stale = append(stale, f.grant(a, newsletter, optin.ConsentChange{At: f.ago(3 * time.Hour)}))
	}
	rs = f.apply(stale...)
	for i, r := range rs {
		if r.Applied || r.Consent == nil || r.Consent.Status != optin.StatusWithdrawn || r.Consent.EventID != last[withdrawn[i]].Event.ID {
			t.Errorf("stale grant %d: %+v, want ignored with the withdrawal", i, r)
		}
	}
	f.wantVerified(900, 1000)
}
