package webhooks

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

// TestDispatchTwoInstances: two proxies on one Redis deliver every event
// once (the target's lease), also when the lease holder stops.
func TestDispatchTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	st1, st2 := teststore.Redis(t, srv), teststore.Redis(t, srv)
	warmUp(t, st1)
	r := newReceiver(t, testSecret)
	p1 := newTestEndpoint(t, r.srv.URL, noRetryClient())
	p2 := newTestEndpoint(t, r.srv.URL, noRetryClient())
	d1, err := NewDispatcher(fastOptions(st1, p1))
	if err != nil {
		t.Fatal(err)
	}
	go d1.Run(context.Background())
	defer d1.Close()
	waitCursor(t, st1, p1.Name())
	runDispatcher(t, fastOptions(st2, p2))

	c := newChanger(t, st1)
	want := c.events(3, 3)
	r.waitAccepted(9, 10*time.Second)

	// The holder stops; the other takes the target over when the lease
	// runs out.
	d1.Close()
	for addr, ids := range c.events(3, 3) {
		want[addr] = append(want[addr], ids...)
	}
	acc := r.waitAccepted(18, 20*time.Second)
	waitFor(t, "all retired", 10*time.Second, func() bool { return len(records(t, st2, p2.Name(), optin.DeliveryRetired)) == 18 })
	checkArrivals(t, acc, want)
	if _, requests, dups, _ := r.snapshot(); requests != 18 || dups != 0 {
		t.Errorf("%d requests, %d duplicates; want 18, 0", requests, dups)
	}
}

// BenchmarkDispatch measures outbound deliveries per second from a Redis
// store to a fast local receiver (no faults): events recorded first, then
// delivered by one Dispatcher.
func BenchmarkDispatch(b *testing.B) {
	for _, conc := range []int{4, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			srv := redistest.Start(b)
			st := teststore.Redis(b, srv)
			ctx := context.Background()
			warmUp(b, st)
			var got atomic.Int64
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Add(1)
				w.WriteHeader(http.StatusNoContent)
			}))
			defer rcv.Close()
			p := newTestEndpoint(b, rcv.URL, HTTPClientOptions{RetryMax: -1})
			start, err := st.OutboxEnd(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.SaveDeliveries(ctx, p.Name(), nil, start); err != nil {
				b.Fatal(err)
			}
			record(b, st, b.N)

			opts := fastOptions(st, p)
			opts.Concurrency = conc
			opts.Batch = 1000
			d, err := NewDispatcher(opts)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			t0 := time.Now()
			go d.Run(ctx)
			for got.Load() < int64(b.N) {
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(t0)
			b.StopTimer()
			d.Close()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
		})
	}
}

// record grants n consents, to 1,000 subjects in turn, in batches.
func record(b *testing.B, st optin.Store, n int) {
	l, err := optin.NewLedger(optin.LedgerOptions{Store: st, Purposes: testPurposes})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	var changes []optin.Change
	flush := func() {
		if _, err := l.Apply(context.Background(), changes); err != nil {
			b.Fatal(err)
		}
		changes = changes[:0]
	}
	for i := range n {
		a, _ := optin.ParseAddress(fmt.Sprintf("b%d@example.org", i%1000))
		cc := optin.ConsentChange{Source: optin.SourceAPI, At: at.Add(time.Duration(i) * time.Microsecond)}
		ch, err := l.GrantChange(a, purpose, cc)
		if i/1000%2 == 1 {
			ch, err = l.WithdrawChange(a, purpose, cc)
		}
		if err != nil {
			b.Fatal(err)
		}
		changes = append(changes, ch)
		if len(changes) == 500 {
			flush()
		}
	}
	if len(changes) > 0 {
		flush()
	}
}
