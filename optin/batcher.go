package optin

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Applier is the part of a Store that Batcher uses.
type Applier interface {
	Apply(ctx context.Context, changes []Change) ([]Result, error)
}

// Batcher shares Apply calls among concurrent callers (group commit):
// while one batch is being applied, the changes of callers that arrive
// meanwhile gather and go to the store together as the next batch. A
// lone caller waits for one Apply as before; a busy relay writes the
// receipts of many messages in one store write.
type Batcher struct {
	store   Applier
	max     int
	timeout time.Duration

	mu      sync.Mutex
	pending []*batchCall
	running bool
	closed  bool
	// flushing is done while a flush runs, so that Close can wait for it.
	flushing sync.WaitGroup
}

// ErrBatcherClosed is Apply's error after Close.
var ErrBatcherClosed = errors.New("optin: batcher closed")

type batchCall struct {
	changes []Change
	results []Result
	err     error
	done    chan struct{}
}

// NewBatcher returns a Batcher over store that applies at most max
// changes per batch (a caller's changes are never split; max <= 0 means
// 500), each batch bounded by timeout (<= 0 means 30s).
func NewBatcher(store Applier, max int, timeout time.Duration) *Batcher {
	if max <= 0 {
		max = 500
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &Batcher{store: store, max: max, timeout: timeout}
}

// Apply applies changes, possibly together with other callers' changes,
// and returns their results in order. When ctx ends first, Apply returns
// its error, and the changes may still be applied.
func (b *Batcher) Apply(ctx context.Context, changes []Change) ([]Result, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	c := &batchCall{changes: changes, done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrBatcherClosed
	}
	b.pending = append(b.pending, c)
	if !b.running {
		b.running = true
		b.flushing.Add(1)
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.results, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close refuses further changes and waits for the batches already taken,
// which each end within the batch timeout: the store may be closed once
// it returns.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.flushing.Wait()
}

// flush applies pending batches until none is left.
func (b *Batcher) flush() {
	defer b.flushing.Done()
	for {
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		calls, n := b.take()
		b.mu.Unlock()

		all := calls[0].changes // a lone caller's changes go as they are
		if len(calls) > 1 {
			all = make([]Change, 0, n)
			for _, c := range calls {
				all = append(all, c.changes...)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		results, err := b.store.Apply(ctx, all)
		cancel()
		off := 0
		for _, c := range calls {
			end := off + len(c.changes)
			if end <= len(results) {
				c.results = results[off:end:end]
			}
			c.err = err
			off = end
			close(c.done)
		}
	}
}

// take removes from pending the calls of the next batch: the first, and
// those after it while the batch stays within max. b.mu is held.
func (b *Batcher) take() ([]*batchCall, int) {
	n, i := 0, 0
	for i < len(b.pending) && (i == 0 || n+len(b.pending[i].changes) <= b.max) {
		n += len(b.pending[i].changes)
		i++
	}
	calls := b.pending[:i:i]
	b.pending = b.pending[i:]
	return calls, n
}
