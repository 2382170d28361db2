package redisstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
)

// TestSweepersTwoInstances: two instances on one Redis run the retention
// sweep and the receipt pruning at the same time, as they would without
// the lease (or with a lease that ran out during a long pass): every
// notice and expiry is recorded once and counted once between them, every
// old receipt is pruned once, and every chain still verifies.
func TestSweepersTwoInstances(t *testing.T) {
	const day = 24 * time.Hour
	srv := redistest.Start(t)
	s1, s2 := openOn(t, srv, Options{}), openOn(t, srv, Options{})
	ctx := context.Background()
	l := ledger(t, s1)
	now := time.Now().UTC()
	const n = 300
	var batch []optin.Change
	oldReceipts := 0
	for i := range n {
		a := addr(t, "sweep%03d@example.com", i)
		back := time.Hour // not due
		switch i % 3 {
		case 0:
			back = 731 * day // expired a day ago
		case 1:
			back = 720 * day // expires in ten days: a notice
		}
		ch, err := l.GrantChange(a, "newsletter", optin.ConsentChange{At: now.Add(-back)})
		if err != nil {
			t.Fatal(err)
		}
		sent := now.Add(-time.Hour)
		if i%2 == 0 {
			sent = now.Add(-500 * day)
			oldReceipts++
		}
		batch = append(batch, ch, optin.Receipt{Subject: a, Purpose: "newsletter", Actor: "smtp:test", Time: sent, Relayed: true,
			Decision: optin.Decision{Allow: true, Reason: optin.ReasonConsent}, Details: optin.ReceiptDetails{MessageID: fmt.Sprintf("<m%d@test>", i)}}.Change())
	}
	if _, err := s1.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}

	opts := optin.SweepOptions{Notice: 30 * day, PendingExpiry: 7 * day, PageSize: 25}
	reps := make([]optin.SweepReport, 2)
	pruned := make([]int, 2)
	var wg sync.WaitGroup
	for i, s := range []*Store{s1, s2} {
		wg.Go(func() {
			var err error
			if reps[i], err = ledger(t, s).Sweep(ctx, now, opts); err != nil {
				t.Errorf("instance %d: Sweep: %v", i+1, err)
			}
		})
		wg.Go(func() {
			var err error
			if pruned[i], err = s.PruneReceipts(ctx, now.Add(-400*day)); err != nil {
				t.Errorf("instance %d: PruneReceipts: %v", i+1, err)
			}
		})
	}
	wg.Wait()

	noticed := reps[0].Noticed["newsletter"] + reps[1].Noticed["newsletter"]
	expired := reps[0].Expired["newsletter"] + reps[1].Expired["newsletter"]
	if noticed != n/3 || expired != n/3 {
		t.Errorf("the two sweeps counted %d notices and %d expiries, want %d each (%+v, %+v)", noticed, expired, n/3, reps[0], reps[1])
	}
	if pruned[0]+pruned[1] != oldReceipts {
		t.Errorf("the two prunings pruned %d and %d receipts, want %d in all", pruned[0], pruned[1], oldReceipts)
	}
	for i := range n {
		a := addr(t, "sweep%03d@example.com", i)
		page, err := s2.Events(ctx, optin.EventQuery{Subject: a, Limit: optin.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		count := map[optin.EventType]int{}
		for _, e := range page.Events {
			count[e.Type]++
		}
		want := map[int]map[optin.EventType]int{
			0: {optin.EventConsentExpired: 1},
			1: {optin.EventConsentExpiring: 1},
			2: {},
		}[i%3]
		if count[optin.EventConsentExpired] != want[optin.EventConsentExpired] || count[optin.EventConsentExpiring] != want[optin.EventConsentExpiring] {
			t.Errorf("%s: events %v after two sweeps at once, want %v", a, count, want)
		}
		if wantReceipts := i % 2; count[optin.EventMessageRelayed] != wantReceipts {
			t.Errorf("%s: %d receipts after pruning, want %d", a, count[optin.EventMessageRelayed], wantReceipts)
		}
	}
	r, err := s1.Verify(ctx)
	if err != nil || len(r.Broken) != 0 || r.Subjects != n || r.Events != n+2*n/3+(n-oldReceipts) {
		t.Errorf("Verify after the sweepers: %+v, %v", r, err)
	}
}
