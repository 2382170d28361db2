package journal

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"optinproxy/optin"
)

// TestGroupCommit: many concurrent Applys during an outage all succeed,
// and share fsyncs: while one write waits, the frames that arrive
// gather for the next.
func TestGroupCommit(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	e.srv.Stop()
	const n = 200
	changes := make([]optin.Change, n)
	for i := range changes {
		changes[i] = receipt(addr(t, "group%d@example.com", i%17), fmt.Sprintf("<group-%d@x>", i), time.Now())
	}
	// Hold the file, so that the appends gather behind the first write.
	j.fileMu.Lock()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, ch := range changes {
		wg.Go(func() {
			res, err := j.Apply(context.Background(), []optin.Change{ch})
			if err == nil && (len(res) != 1 || !res[0].Applied) {
				err = fmt.Errorf("results %+v", res)
			}
			errs <- err
		})
	}
	waitFor(t, "every Apply to reach the journal", func() bool { return j.Depth() == n })
	j.fileMu.Unlock()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if s := j.syncs.Load(); s > 2 {
		t.Errorf("%d fsyncs for %d appends, want at most 2", s, n)
	}
	if j.Journaled() != n {
		t.Errorf("journaled %d, want %d", j.Journaled(), n)
	}
	e.restart(t)
	if err := j.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e.store, changes)
}
