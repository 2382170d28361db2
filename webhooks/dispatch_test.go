package webhooks

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

// noRetryClient leaves every retry to the outbox, so that the faults
// below reach it.
func noRetryClient() HTTPClientOptions {
	return HTTPClientOptions{Timeout: 300 * time.Millisecond, RetryMax: -1}
}

// TestDispatchThroughFailures: a receiver that fails, times out, answers
// 429 with Retry-After, loses an acknowledgement, and recovers gets every
// event, in order per subject, signed, none twice after it acknowledged it.
func TestDispatchThroughFailures(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		st, _ := k.open(t)
		warmUp(t, st)
		r := newReceiver(t, testSecret)
		r.failNext(fault{status: 500}, fault{hang: true}, fault{status: 429, retryAfter: "1"}, fault{lose: true}, fault{status: 503})
		p := newTestEndpoint(t, r.srv.URL, noRetryClient())
		reg := prometheus.NewRegistry()
		opts := fastOptions(st, p)
		opts.Registerer = reg
		d := runDispatcher(t, opts)
		waitCursor(t, st, p.Name())

		want := newChanger(t, st).events(3, 4)
		acc := r.waitAccepted(12, 20*time.Second)
		waitFor(t, "all retired", 10*time.Second, func() bool { return len(records(t, st, p.Name(), optin.DeliveryRetired)) == 12 })
		checkArrivals(t, acc, want)
		_, requests, dups, bad := r.snapshot()
		if dups != 0 || bad != 0 {
			t.Errorf("%d duplicates after acknowledgement, %d bad signatures", dups, bad)
		}
		if requests != 12+5 {
			t.Errorf("%d requests, want 17 (12 events, 5 faults)", requests)
		}
		if n := len(records(t, st, p.Name(), optin.DeliveryPending)); n != 0 {
			t.Errorf("%d still pending", n)
		}
		if got := testutil.ToFloat64(d.metrics.deliveries.WithLabelValues(p.Name(), outcomeDelivered)); got != 12 {
			t.Errorf("delivered metric = %v", got)
		}
		if got := testutil.ToFloat64(d.metrics.deliveries.WithLabelValues(p.Name(), outcomeRetry)); got != 5 {
			t.Errorf("retry metric = %v", got)
		}
		// The official library verifies what arrived.
		var signed []nodeSigned
		for _, a := range acc {
			signed = append(signed, signedFromHeader(a.header, a.body))
		}
		if _, verified := runNode(t, testSecret, nil, signed); len(verified) != len(signed) {
			t.Errorf("node verified %d of %d", len(verified), len(signed))
		} else {
			for i, v := range verified {
				if v != "" {
					t.Errorf("node refuses delivery %d: %s", i, v)
				}
			}
		}
	})
}

// TestDispatchDeadLetter: refused for good, or failing past DeadAfter,
// a delivery is dead; replayed, it is delivered; retired records are kept
// for RetiredFor, then pruned.
func TestDispatchDeadLetter(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		st, _ := k.open(t)
		warmUp(t, st)
		clock := testtools.NewClock(time.Now())
		r := newReceiver(t, testSecret)
		r.setFallback(fault{status: 500})
		p := newTestEndpoint(t, r.srv.URL, noRetryClient())
		opts := fastOptions(st, p)
		opts.Now = clock.Now
		opts.DeadAfter = time.Hour
		opts.RetiredFor = 24 * time.Hour
		d := runDispatcher(t, opts)
		waitCursor(t, st, p.Name())
		c := newChanger(t, st)

		// Failing: pending, until an hour has passed.
		failing := c.toggle("a@example.org")
		waitFor(t, "attempts", 10*time.Second, func() bool {
			clock.Advance(25 * time.Millisecond) // past each backoff
			rec, err := st.Delivery(ctx, p.Name(), failing)
			return err == nil && rec.Attempts >= 2
		})
		if rec, _ := st.Delivery(ctx, p.Name(), failing); rec.Status != optin.DeliveryPending || rec.LastError != "webhooks: receiver answered 500" {
			t.Fatalf("failing delivery: %+v", rec)
		}
		clock.Advance(time.Hour + time.Minute)
		waitFor(t, "dead after an hour", 10*time.Second, func() bool {
			rec, _ := st.Delivery(ctx, p.Name(), failing)
			return rec.Status == optin.DeliveryDead
		})

		// Refused: dead at once.
		r.setFallback(fault{status: 410})
		refused := c.toggle("b@example.org")
		waitFor(t, "dead when refused", 10*time.Second, func() bool {
			rec, _ := st.Delivery(ctx, p.Name(), refused)
			return rec.Status == optin.DeliveryDead && rec.Attempts == 1
		})
		dead, err := d.List(ctx, optin.DeliveryQuery{Target: p.Name(), Status: optin.DeliveryDead})
		if err != nil || len(dead.Deliveries) != 2 {
			t.Fatalf("dead list = %+v, %v", dead, err)
		}

		// Replayed, once the receiver is back: delivered.
		r.setFallback(fault{})
		if _, err := d.Replay(ctx, p.Name(), failing); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Replay(ctx, p.Name(), failing); !errors.Is(err, ErrNotDead) {
			t.Errorf("second replay = %v, want ErrNotDead", err)
		}
		if _, err := d.Replay(ctx, "hook-nope", failing); !errors.Is(err, ErrUnknownTarget) {
			t.Errorf("replay of another target = %v", err)
		}
		if _, err := d.Replay(ctx, p.Name(), "no-such-event"); !errors.Is(err, optin.ErrNotFound) {
			t.Errorf("replay of no record = %v", err)
		}
		waitFor(t, "replay delivered", 10*time.Second, func() bool {
			rec, _ := st.Delivery(ctx, p.Name(), failing)
			return rec.Status == optin.DeliveryRetired
		})
		if acc := r.waitAccepted(1, time.Second); len(acc) != 1 || acc[0].payload.ID != failing {
			t.Errorf("arrived %+v", acc)
		}

		// Kept for a day, then pruned by the prune loop.
		clock.Advance(23 * time.Hour)
		if _, err := d.Prune(ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{failing, refused} {
			if _, err := st.Delivery(ctx, p.Name(), id); err != nil {
				t.Errorf("record %s within RetiredFor: %v", id, err)
			}
		}
		clock.Advance(2 * time.Hour)
		waitFor(t, "pruned", 10*time.Second, func() bool {
			_, e1 := st.Delivery(ctx, p.Name(), failing)
			_, e2 := st.Delivery(ctx, p.Name(), refused)
			return errors.Is(e1, optin.ErrNotFound) && errors.Is(e2, optin.ErrNotFound)
		})
	})
}

// TestDispatchRestart: the proxy stops while a delivery is being retried;
// after a restart on the same store it is delivered.
func TestDispatchRestart(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		st, reopen := k.open(t)
		warmUp(t, st)
		r := newReceiver(t, testSecret)
		r.setFallback(fault{status: 502})
		p := newTestEndpoint(t, r.srv.URL, noRetryClient())
		opts := fastOptions(st, p)
		opts.Backoff = func(int) time.Duration { return 50 * time.Millisecond }
		d1, err := NewDispatcher(opts)
		if err != nil {
			t.Fatal(err)
		}
		go d1.Run(ctx)
		waitCursor(t, st, p.Name())
		want := newChanger(t, st).events(2, 2)
		waitFor(t, "retrying", 10*time.Second, func() bool {
			recs := records(t, st, p.Name(), optin.DeliveryPending)
			return len(recs) == 4 && recs[0].Attempts+recs[1].Attempts+recs[2].Attempts+recs[3].Attempts >= 3
		})
		d1.Close()
		st.Close()

		r.setFallback(fault{})
		st2 := reopen()
		opts.Store = st2
		runDispatcher(t, opts)
		acc := r.waitAccepted(4, 10*time.Second)
		waitFor(t, "all retired", 10*time.Second, func() bool { return len(records(t, st2, p.Name(), optin.DeliveryRetired)) == 4 })
		checkArrivals(t, acc, want)
		if _, _, dups, _ := r.snapshot(); dups != 0 {
			t.Errorf("%d duplicates", dups)
		}
	})
}

// TestDispatchNewTargetOnEmptyOutbox: a target that first starts on an
// empty outbox saves its place at once, so events written while the
// proxy is down later still reach it.
func TestDispatchNewTargetOnEmptyOutbox(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		st, _ := k.open(t)
		r := newReceiver(t, testSecret)
		p := newTestEndpoint(t, r.srv.URL, noRetryClient())
		d, err := NewDispatcher(fastOptions(st, p))
		if err != nil {
			t.Fatal(err)
		}
		go d.Run(context.Background())
		waitCursor(t, st, p.Name())
		d.Close()

		want := newChanger(t, st).events(2, 2) // while no dispatcher runs
		runDispatcher(t, fastOptions(st, p))
		checkArrivals(t, r.waitAccepted(4, 10*time.Second), want)
	})
}

// TestDispatchPlaceBeforeWrites: a new target placed (as the server does
// before it listens) gets the changes written before its worker first
// runs; without Place its worker would start at the end, after them.
func TestDispatchPlaceBeforeWrites(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		st, _ := k.open(t)
		r := newReceiver(t, testSecret)
		p := newTestEndpoint(t, r.srv.URL, noRetryClient())
		d, err := NewDispatcher(fastOptions(st, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Place(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := newChanger(t, st).events(2, 2) // before any worker ran
		go d.Run(context.Background())
		t.Cleanup(func() { d.Close() })
		checkArrivals(t, r.waitAccepted(4, 10*time.Second), want)
	})
}

// TestDispatchOptions: bad options are refused.
func TestDispatchOptions(t *testing.T) {
	p := newTestEndpoint(t, "http://127.0.0.1:1/", quickClient())
	st, _ := storeKinds[0].open(t)
	for _, o := range []DispatcherOptions{
		{},
		{Store: st, Targets: []Target{p, p}},
		{Store: st, Targets: []Target{namedTarget("Bad.Name")}},
	} {
		if _, err := NewDispatcher(o); err == nil {
			t.Errorf("NewDispatcher(%+v) accepted", o)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := NewDispatcher(DispatcherOptions{Store: st, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDispatcher(DispatcherOptions{Store: st, Registerer: reg}); err == nil {
		t.Error("metrics registered twice")
	}
	d, _ := NewDispatcher(DispatcherOptions{Store: st})
	if _, err := d.List(context.Background(), optin.DeliveryQuery{Status: "gone"}); !errors.Is(err, optin.ErrBadInput) {
		t.Errorf("List with a bad status = %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close before Run = %v", err)
	}
}

// namedTarget is a Target that refuses everything, for option checks.
type namedTarget string

func (n namedTarget) Name() string           { return string(n) }
func (n namedTarget) Wants(optin.Event) bool { return true }
func (n namedTarget) Concurrency() int       { return 10 }
func (n namedTarget) Deliver(context.Context, Delivery) (bool, error) {
	return false, errors.New("refused")
}
