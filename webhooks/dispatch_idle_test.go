package webhooks

import (
	"context"
	"testing"
	"time"
)

// TestDispatchIdleTarget: a target with nothing new to take for longer
// than RetiredFor, while prune runs, is not forgotten by the store: the
// events written while the proxy was down later still reach it after a
// restart, and so do those written while it runs.
func TestDispatchIdleTarget(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		st, _ := k.open(t)
		warmUp(t, st)
		r := newReceiver(t, testSecret)
		p := newTestEndpoint(t, r.srv.URL, noRetryClient())
		opts := fastOptions(st, p)
		// The store's clock is the real one: the retention is short, so
		// that the idle time below outlasts it several times over.
		opts.RetiredFor = time.Second
		d1, err := NewDispatcher(opts)
		if err != nil {
			t.Fatal(err)
		}
		go d1.Run(context.Background())
		waitCursor(t, st, p.Name())
		time.Sleep(2 * opts.RetiredFor) // idle; prune runs every PruneEvery
		c := newChanger(t, st)
		want := c.events(1, 2)
		r.waitAccepted(2, 10*time.Second)
		time.Sleep(2 * opts.RetiredFor) // idle again
		d1.Close()

		more := c.events(2, 2) // while no dispatcher runs
		for addr, ids := range more {
			want[addr] = append(want[addr], ids...)
		}
		runDispatcher(t, opts)
		checkArrivals(t, r.waitAccepted(6, 10*time.Second), want)
	})
}
