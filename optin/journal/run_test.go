package journal

import (
	"context"
	"testing"
	"time"
)

// TestRun: the background drainer empties the journal once the store is
// back, without an explicit Drain; Close stops it promptly.
func TestRun(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	ran := make(chan struct{})
	go func() {
		j.Run(context.Background())
		close(ran)
	}()
	changes := outage(t, e, j, "run", 5)
	time.Sleep(100 * time.Millisecond) // a few failed tries, backing off
	if j.Depth() != 5 {
		t.Fatalf("depth %d with the store down, want 5", j.Depth())
	}
	e.restart(t)
	waitFor(t, "the drainer to empty the journal", func() bool { return j.Depth() == 0 && e.size(t) == 0 })
	checkStored(t, e.store, changes)

	// Down again, with the drainer backing off: Close does not wait for
	// the store.
	outage(t, e, j, "again", 2)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(time.Second):
		t.Fatal("Run did not return after Close")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}

// TestRunContext: Run returns when its context ends.
func TestRunContext(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		j.Run(ctx)
		close(ran)
	}()
	outage(t, e, j, "ctx", 1)
	cancel()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
	if j.Depth() != 1 {
		t.Errorf("depth %d, want the journaled change still there", j.Depth())
	}
}
