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

// TestTwoSweepersOneRedis: two instances on one Redis sweep the due
// erasures at once, each with its own ledger and the same clock: every
// subject is erased once, and the erasure job's lease has one holder.
func TestTwoSweepersOneRedis(t *testing.T) {
	srv := redistest.Start(t)
	var mu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
	purposes := optin.Purposes{"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true}}
	var ledgers []*optin.Ledger
	var stores []*Store
	for range 2 {
		s := openOn(t, srv, Options{Now: clock, Client: patientClient(srv)})
		l, err := optin.NewLedger(optin.LedgerOptions{Store: s, Purposes: purposes, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		stores, ledgers = append(stores, s), append(ledgers, l)
	}
	ctx := context.Background()
	var addrs []optin.Address
	for i := range 40 {
		a, _ := optin.ParseAddress(fmt.Sprintf("twice%02d@example.com", i))
		addrs = append(addrs, a)
		if _, err := ledgers[i%2].Grant(ctx, a, "newsletter", optin.ConsentChange{}); err != nil {
			t.Fatal(err)
		}
		if _, err := ledgers[i%2].Erase(ctx, a, optin.ErasureRequest{At: clock().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()

	held := 0
	for _, s := range stores {
		ok, err := s.Lease(ctx, "erasure", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			held++
		}
	}
	if held != 1 {
		t.Errorf("the erasure lease is held by %d instances, want 1", held)
	}

	var wg sync.WaitGroup
	erased := make([]int, 2)
	for i, l := range ledgers {
		wg.Go(func() {
			sw, err := l.EraseDue(ctx, false)
			if err != nil {
				t.Errorf("sweeper %d: %v", i, err)
			}
			erased[i] = sw.Erased
		})
	}
	wg.Wait()
	if erased[0]+erased[1] != len(addrs) {
		t.Errorf("the sweepers erased %v, %d in all; want %d", erased, erased[0]+erased[1], len(addrs))
	}
	for _, a := range addrs {
		page, err := stores[0].Events(ctx, optin.EventQuery{Subject: a, Type: optin.EventSubjectErased})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) != 1 {
			t.Errorf("%s: %d subject.erased events, want 1", a, len(page.Events))
		}
	}
	if n, err := stores[0].rdb.ZCard(ctx, stores[0].keys.erasures()).Result(); err != nil || n != 0 {
		t.Errorf("the index of scheduled erasures after the sweep: %d members, %v; want none", n, err)
	}
}
