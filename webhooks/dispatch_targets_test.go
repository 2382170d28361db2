package webhooks

import (
	"context"
	"sync"
	"testing"
	"time"
)

// A target added while the dispatcher runs gets the next event, and one
// removed gets nothing more; targets left as they were keep their
// workers.
func TestSetTargetsAddsAndRemoves(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		st, _ := k.open(t)
		warmUp(t, st)
		ra, rb := newReceiver(t, testSecret), newReceiver(t, testSecret)
		a := newTestEndpoint(t, ra.srv.URL, noRetryClient())
		b := newTestEndpoint(t, rb.srv.URL, noRetryClient())
		d := runDispatcher(t, fastOptions(st, a))
		waitCursor(t, st, a.Name())
		kept := d.worker(a.Name())

		if err := d.SetTargets(ctx, []Target{a, b}); err != nil {
			t.Fatal(err)
		}
		if d.worker(a.Name()) != kept {
			t.Error("an unchanged target's worker was replaced")
		}
		ch := newChanger(t, st)
		first := ch.toggle("jan@example.org")
		if got := ra.waitAccepted(1, 10*time.Second); got[0].payload.ID != first {
			t.Errorf("the kept target got %s, want %s", got[0].payload.ID, first)
		}
		if got := rb.waitAccepted(1, 10*time.Second); got[0].payload.ID != first {
			t.Errorf("the added target got %s, want %s", got[0].payload.ID, first)
		}

		if err := d.SetTargets(ctx, []Target{b}); err != nil {
			t.Fatal(err)
		}
		second := ch.toggle("jan@example.org")
		if got := rb.waitAccepted(2, 10*time.Second); got[1].payload.ID != second {
			t.Errorf("the remaining target got %s, want %s", got[1].payload.ID, second)
		}
		// SetTargets returned after the removed target's worker stopped:
		// nothing can reach it any more.
		if acc, _, _, _ := ra.snapshot(); len(acc) != 1 {
			t.Errorf("the removed target got %d events, want only the one before its removal", len(acc))
		}
		if _, err := d.Replay(ctx, a.Name(), first); err == nil {
			t.Error("Replay to a removed target worked")
		}
	})
}

// Names that are invalid or twice given change nothing.
func TestSetTargetsRefusesBadNames(t *testing.T) {
	st, _ := storeKinds[0].open(t)
	d := runDispatcher(t, fastOptions(st, namedTarget("one")))
	for _, ts := range [][]Target{
		{namedTarget("two"), namedTarget("two")},
		{namedTarget("Not Valid")},
	} {
		if err := d.SetTargets(context.Background(), ts); err == nil {
			t.Errorf("%v: accepted", ts)
		}
	}
	if names := d.names(); len(names) != 1 || names[0] != "one" {
		t.Errorf("targets after refused changes: %v", names)
	}
}

// SetTargets before Run, during it and after Close: run with -race.
func TestSetTargetsWhileRunning(t *testing.T) {
	st, _ := storeKinds[0].open(t)
	d, err := NewDispatcher(fastOptions(st, namedTarget("one")))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.SetTargets(ctx, []Target{namedTarget("one"), namedTarget("two")}); err != nil {
		t.Fatal(err)
	}
	go d.Run(ctx)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			for j := range 10 {
				ts := []Target{namedTarget("one")}
				if (i+j)%2 == 0 {
					ts = append(ts, namedTarget("two"), namedTarget("three"))
				}
				if err := d.SetTargets(ctx, ts); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() { newChanger(t, st).events(2, 5) })
	wg.Wait()
	d.Close()
	if err := d.SetTargets(ctx, []Target{namedTarget("four")}); err != nil {
		t.Fatal(err)
	}
}
