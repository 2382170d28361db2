package webhooks

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

const purpose = "newsletter"

// storeKind opens real stores of one kind: open(t) a new store, reopen()
// another instance on the same data (a restarted proxy, a second proxy on
// one Redis; nil when the kind cannot have two at once).
type storeKind struct {
	name string
	open func(t *testing.T) (first optin.Store, reopen func() optin.Store)
}

var storeKinds = []storeKind{
	{"file", func(t *testing.T) (optin.Store, func() optin.Store) {
		path := t.TempDir() + "/optin.db"
		return teststore.File(t, path), func() optin.Store { return teststore.File(t, path) }
	}},
	{"redis", func(t *testing.T) (optin.Store, func() optin.Store) {
		srv := redistest.Start(t)
		return teststore.Redis(t, srv), func() optin.Store { return teststore.Redis(t, srv) }
	}},
}

// eachStore runs f against each kind of store.
func eachStore(t *testing.T, f func(t *testing.T, k storeKind)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { f(t, k) })
	}
}

// changer records consent changes through a ledger on a store.
type changer struct {
	t      testing.TB
	ledger *optin.Ledger
	seq    int
}

func newChanger(t testing.TB, st optin.Store) *changer {
	l, err := optin.NewLedger(optin.LedgerOptions{Store: st, Purposes: testPurposes, PolicyVersion: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	return &changer{t: t, ledger: l}
}

// toggle grants or withdraws (in turn) addr's consent and returns the
// event's id.
func (c *changer) toggle(addr string) string {
	c.t.Helper()
	a, err := optin.ParseAddress(addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.seq++
	cc := optin.ConsentChange{Source: optin.SourceAPI, Actor: "test", At: time.Now().Add(time.Duration(c.seq) * time.Millisecond)}
	var res optin.Result
	if c.seq%2 == 1 {
		res, err = c.ledger.Grant(context.Background(), a, purpose, cc)
	} else {
		res, err = c.ledger.Withdraw(context.Background(), a, purpose, cc)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if !res.Applied {
		c.t.Fatalf("change %d of %s recorded no event", c.seq, addr)
	}
	return res.Event.ID
}

// events records n changes for each of subjects, interleaved, and returns
// each subject's event ids in order.
func (c *changer) events(subjects, n int) map[string][]string {
	want := make(map[string][]string)
	for range n {
		for s := range subjects {
			addr := fmt.Sprintf("s%d@example.org", s)
			want[addr] = append(want[addr], c.toggle(addr))
		}
	}
	return want
}

// waitFor polls cond until it holds, at most limit.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCursor waits until target has saved its cursor: it took over the
// outbox, and what is recorded from now on reaches it.
func waitCursor(t testing.TB, st optin.Store, target string) {
	t.Helper()
	waitFor(t, "cursor of "+target, 10*time.Second, func() bool {
		_, err := st.OutboxCursor(context.Background(), target)
		if err != nil && !errors.Is(err, optin.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	})
}

// records returns target's records of one status.
func records(t testing.TB, st OutboxStore, target string, status optin.DeliveryStatus) []optin.OutboxDelivery {
	t.Helper()
	var all []optin.OutboxDelivery
	q := optin.DeliveryQuery{Target: target, Status: status, Limit: optin.MaxPageSize}
	for {
		page, err := st.Deliveries(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Deliveries...)
		if page.NextCursor == "" {
			return all
		}
		q.Cursor = page.NextCursor
	}
}

// runDispatcher starts a Dispatcher and stops it when the test ends.
func runDispatcher(t testing.TB, opts DispatcherOptions) *Dispatcher {
	t.Helper()
	d, err := NewDispatcher(opts)
	if err != nil {
		t.Fatal(err)
	}
	go d.Run(context.Background())
	t.Cleanup(func() { d.Close() })
	return d
}

// fastOptions are dispatcher options for tests: quick polls and retries.
func fastOptions(st optin.Store, targets ...Target) DispatcherOptions {
	return DispatcherOptions{
		Store:      st,
		Targets:    targets,
		Poll:       10 * time.Millisecond,
		LeaseTTL:   300 * time.Millisecond,
		Reload:     50 * time.Millisecond,
		PruneEvery: 20 * time.Millisecond,
		Backoff:    func(int) time.Duration { return 20 * time.Millisecond },
	}
}

// warmUp records one event before a dispatcher first starts, so that the
// outbox has an end to start from.
func warmUp(t testing.TB, st optin.Store) {
	newChanger(t, st).toggle("warm-up@example.org")
}

// checkArrivals checks that each subject's events arrived in order, each
// once, and nothing else.
func checkArrivals(t testing.TB, acc []received, want map[string][]string) {
	t.Helper()
	got := make(map[string][]string)
	for _, r := range acc {
		got[r.payload.Email] = append(got[r.payload.Email], r.payload.ID)
	}
	total := 0
	for addr, ids := range want {
		total += len(ids)
		if fmt.Sprint(got[addr]) != fmt.Sprint(ids) {
			t.Errorf("%s: arrived %v, want %v", addr, got[addr], ids)
		}
	}
	if len(acc) != total {
		t.Errorf("%d deliveries arrived, want %d", len(acc), total)
	}
}
