package optin_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"optinproxy/optin"
)

// slowApplier records the batches it is given and takes a while for
// each, so that callers pile up behind it.
type slowApplier struct {
	mu      sync.Mutex
	batches [][]optin.Change
	err     error
	delay   time.Duration
}

func (s *slowApplier) Apply(_ context.Context, changes []optin.Change) ([]optin.Result, error) {
	time.Sleep(s.delay)
	s.mu.Lock()
	s.batches = append(s.batches, changes)
	s.mu.Unlock()
	out := make([]optin.Result, len(changes))
	for i, c := range changes {
		out[i] = optin.Result{Applied: true, Event: optin.Event{ID: c.Event.ID}}
	}
	return out, s.err
}

func change(id string) optin.Change { return optin.Change{Event: optin.Event{ID: id}} }

func TestBatcherSharesWritesAndKeepsResults(t *testing.T) {
	store := &slowApplier{delay: 20 * time.Millisecond}
	b := optin.NewBatcher(store, 0, 0)
	const callers = 40
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			ids := []string{fmt.Sprintf("%d-a", i), fmt.Sprintf("%d-b", i)}
			rs, err := b.Apply(context.Background(), []optin.Change{change(ids[0]), change(ids[1])})
			if err != nil || len(rs) != 2 || rs[0].Event.ID != ids[0] || rs[1].Event.ID != ids[1] {
				t.Errorf("caller %d: %+v %v", i, rs, err)
			}
		})
	}
	wg.Wait()
	n := 0
	for _, batch := range store.batches {
		n += len(batch)
	}
	if n != 2*callers {
		t.Errorf("%d changes applied, want %d", n, 2*callers)
	}
	// 40 callers arriving together while a 20ms write runs: a handful of
	// writes, not one each.
	if len(store.batches) >= callers/2 {
		t.Errorf("%d writes for %d callers: not shared", len(store.batches), callers)
	}
}

func TestBatcherCapsBatches(t *testing.T) {
	store := &slowApplier{delay: 10 * time.Millisecond}
	b := optin.NewBatcher(store, 5, 0)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			cs := []optin.Change{change(fmt.Sprint(i, "a")), change(fmt.Sprint(i, "b")), change(fmt.Sprint(i, "c"))}
			if _, err := b.Apply(context.Background(), cs); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, batch := range store.batches {
		// A caller's changes are never split, so a batch holds one
		// caller (3) or, within the cap, no more.
		if len(batch) > 5 {
			t.Errorf("batch of %d changes, cap 5", len(batch))
		}
	}
}

func TestBatcherPassesErrors(t *testing.T) {
	boom := errors.New("store down")
	b := optin.NewBatcher(&slowApplier{err: boom}, 0, 0)
	if _, err := b.Apply(context.Background(), []optin.Change{change("x")}); !errors.Is(err, boom) {
		t.Errorf("error %v, want %v", err, boom)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := optin.NewBatcher(&slowApplier{delay: time.Second}, 0, 0)
	if _, err := slow.Apply(ctx, []optin.Change{change("y")}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v", err)
	}
	if rs, err := b.Apply(context.Background(), nil); rs != nil || err != nil {
		t.Errorf("empty apply: %v %v", rs, err)
	}
}

// gatedApplier holds each Apply until released.
type gatedApplier struct {
	started, release chan struct{}
	finished         bool
}

func (g *gatedApplier) Apply(_ context.Context, changes []optin.Change) ([]optin.Result, error) {
	g.started <- struct{}{}
	<-g.release
	g.finished = true
	return make([]optin.Result, len(changes)), nil
}

// Close waits for a write in flight, even one whose caller gave up, so
// that the store is not closed under it; after Close, Apply refuses.
func TestBatcherCloseWaitsForFlush(t *testing.T) {
	g := &gatedApplier{started: make(chan struct{}), release: make(chan struct{})}
	b := optin.NewBatcher(g, 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error)
	go func() {
		_, err := b.Apply(ctx, []optin.Change{change("a")})
		gaveUp <- err
	}()
	<-g.started
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller: %v", err)
	}
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	close(g.release)
	<-closed
	if !g.finished {
		t.Fatal("Close returned before the write in flight finished")
	}
	if _, err := b.Apply(context.Background(), []optin.Change{change("b")}); !errors.Is(err, optin.ErrBatcherClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
}
