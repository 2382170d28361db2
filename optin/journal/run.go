package journal

import (
	"context"
	"time"
)

// maxBackoff is how far Run backs off, in multiples of RetryEvery.
const maxBackoff = 30

// Run drains the journal in the background: every Options.RetryEvery it
// looks, and while the journal holds anything it drains, backing off to
// 30 times as long while the store fails (each failure logged at warn).
// It returns when ctx ends or Close is called; call it once, in a
// goroutine of its own, after Open.
func (j *Journal) Run(ctx context.Context) {
	j.mu.Lock()
	if j.closed.Load() {
		j.mu.Unlock()
		return
	}
	j.wg.Add(1)
	j.mu.Unlock()
	defer j.wg.Done()

	every := j.opts.RetryEvery
	wait := every
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-j.ctx.Done():
			return
		case <-t.C:
		}
		if j.empty() {
			wait = every
			t.Reset(wait)
			continue
		}
		f := j.kick()
		select {
		case <-ctx.Done():
			return
		case <-j.ctx.Done():
			return
		case <-f.done:
		}
		if j.ctx.Err() != nil {
			return
		}
		if f.err == nil {
			wait = every
		} else {
			wait = min(2*wait, maxBackoff*every)
			j.log.Warn("journal not drained; trying again later", "changes", j.Depth(), "retry_in", wait, "err", f.err)
		}
		t.Reset(wait)
	}
}
