package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"optinproxy/optin"
)

// TestReopen: what was journaled survives a Close (or a crash) and is
// drained after the next Open.
func TestReopen(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	changes := outage(t, e, j, "reopen", 7)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = e.open(t)
	if j.Depth() != 7 {
		t.Fatalf("depth after reopening %d, want 7", j.Depth())
	}
	if _, err := j.Lookup(context.Background(), optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{changes[0].Subject}}); !errors.Is(err, optin.ErrUnavailable) {
		t.Errorf("Lookup before the drain: %v, want ErrUnavailable", err)
	}
	e.restart(t)
	if err := j.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e.store, changes)
	if j.Depth() != 0 || e.size(t) != 0 {
		t.Errorf("depth %d, %d bytes after the drain", j.Depth(), e.size(t))
	}
}

// journalFrames journals n receipts, one frame each, with the store
// down, closes the journal, and returns the changes and where each frame
// ends.
func journalFrames(t *testing.T, e *env, n int) ([]optin.Change, []int64) {
	t.Helper()
	j, err := Open(e.options(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	e.srv.Stop()
	var changes []optin.Change
	var ends []int64
	for i := range n {
		changes = append(changes, journal(t, j, fmt.Sprintf("frame%d-", i), 1)...)
		ends = append(ends, e.size(t))
	}
	return changes, ends
}

// TestTornTail: a last frame cut short by a crash is moved to the side
// file and cut off at Open, with an error in the log; the frames before
// it drain.
func TestTornTail(t *testing.T) {
	tests := []struct {
		name string
		tear func(b []byte, lastStart int) []byte
	}{
		{"body cut short", func(b []byte, _ int) []byte { return b[:len(b)-5] }},
		{"header cut short", func(b []byte, last int) []byte { return b[:last+10] }},
		{"body zeroed", func(b []byte, last int) []byte {
			clear(b[last+headerSize:])
			return b
		}},
		{"all zeros", func(b []byte, last int) []byte {
			clear(b[last:])
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			changes, ends := journalFrames(t, e, 3)
			raw, err := os.ReadFile(e.path)
			if err != nil {
				t.Fatal(err)
			}
			torn := tt.tear(raw, int(ends[1]))
			if err := os.WriteFile(e.path, torn, 0o600); err != nil {
				t.Fatal(err)
			}
			j := e.open(t)
			if j.Depth() != 2 || e.size(t) != ends[1] || j.SetAside() != 1 {
				t.Errorf("after Open: depth %d, %d bytes, %d set aside; want 2, %d, 1", j.Depth(), e.size(t), j.SetAside(), ends[1])
			}
			side, err := os.ReadFile(e.path + ".damaged")
			if err != nil || !bytes.Equal(side, torn[ends[1]:]) {
				t.Errorf("side file: %d bytes, %v; want the %d torn bytes", len(side), err, len(torn)-int(ends[1]))
			}
			if !strings.Contains(e.logs.String(), "torn frame") {
				t.Errorf("no error about the torn frame in the log:\n%s", e.logs.String())
			}
			e.restart(t)
			if err := j.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkStored(t, e.store, changes[:2])
			if n := len(history(t, e.store, changes[2].Subject)); n != 0 {
				t.Errorf("the torn frame's change was stored (%d events)", n)
			}
		})
	}
}

// TestDamagedFrame: a frame in the middle that does not check is moved
// to the side file by the drain, logged and counted; the frames around
// it drain.
func TestDamagedFrame(t *testing.T) {
	tests := []struct {
		name string
		at   func(start int) int // the byte of the second frame to flip
	}{
		{"body", func(start int) int { return start + headerSize + nonceSize + 3 }},
		{"nonce", func(start int) int { return start + headerSize + 1 }},
		{"length", func(start int) int { return start + 5 }},
		{"magic", func(start int) int { return start }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			changes, ends := journalFrames(t, e, 3)
			raw, err := os.ReadFile(e.path)
			if err != nil {
				t.Fatal(err)
			}
			raw[tt.at(int(ends[0]))] ^= 0x40
			if err := os.WriteFile(e.path, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			j := e.open(t)
			if j.Depth() != 2 || e.size(t) != ends[2] {
				t.Errorf("after Open: depth %d, %d bytes; want 2, %d", j.Depth(), e.size(t), ends[2])
			}
			e.restart(t)
			if err := j.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkStored(t, e.store, []optin.Change{changes[0], changes[2]})
			if n := len(history(t, e.store, changes[1].Subject)); n != 0 {
				t.Errorf("the damaged frame's change was stored (%d events)", n)
			}
			side, err := os.ReadFile(e.path + ".damaged")
			if err != nil || !bytes.Equal(side, raw[ends[0]:ends[1]]) {
				t.Errorf("side file: %d bytes, %v; want the damaged frame's %d", len(side), err, ends[1]-ends[0])
			}
			if j.SetAside() != 1 || j.Depth() != 0 || e.size(t) != 0 {
				t.Errorf("after the drain: %d set aside, depth %d, %d bytes; want 1, 0, 0", j.SetAside(), j.Depth(), e.size(t))
			}
			if !strings.Contains(e.logs.String(), "set aside: damaged") {
				t.Errorf("no error about the damaged frame in the log:\n%s", e.logs.String())
			}
		})
	}
}

// gated is the Redis store with a knob: its first Apply waits until the
// test opens the gate, and says when it has started waiting.
type gated struct {
	Store
	waiting chan struct{}
	open    chan struct{}
	once    sync.Once
}

func newGated(s Store) *gated {
	return &gated{Store: s, waiting: make(chan struct{}), open: make(chan struct{})}
}

func (g *gated) Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error) {
	g.once.Do(func() {
		close(g.waiting)
		<-g.open
	})
	return g.Store.Apply(ctx, changes)
}

// TestAppendDuringDrain: changes journaled while a drain writes the
// frames before them are drained after them, by the same drain, and the
// file is truncated only once all are in.
func TestAppendDuringDrain(t *testing.T) {
	e := newEnv(t)
	before, _ := journalFrames(t, e, 3)
	e.restart(t)
	g := newGated(e.store)
	j := e.open(t, func(o *Options) { o.Store = g })
	drained := make(chan error, 1)
	go func() { drained <- j.Drain(context.Background()) }()
	<-g.waiting
	// The store is up, but the journal is not empty: these go to it.
	during := journal(t, j, "during", 2)
	if j.Depth() != 5 {
		t.Errorf("depth %d during the drain, want 5", j.Depth())
	}
	close(g.open)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	checkStored(t, e.store, append(before, during...))
	if j.Depth() != 0 || e.size(t) != 0 {
		t.Errorf("after the drain: depth %d, %d bytes", j.Depth(), e.size(t))
	}
}

// TestAppendDuringDrainRace: appenders and drains at once, the store
// coming back midway; in the end every change is stored exactly once.
func TestAppendDuringDrainRace(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	ctx := context.Background()
	e.srv.Stop()
	var (
		mu  sync.Mutex
		all []optin.Change
		wg  sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				ch := receipt(addr(t, "race%d-%d@example.com", w, i%5), fmt.Sprintf("<race-%d-%d@x>", w, i), time.Now())
				if _, err := j.Apply(ctx, []optin.Change{ch}); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
				mu.Lock()
				all = append(all, ch)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			_ = j.Drain(ctx)
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(20 * time.Millisecond)
	e.restart(t)
	wg.Wait()
	if err := j.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e.store, all)
	if j.Depth() != 0 || e.size(t) != 0 {
		t.Errorf("after the drains: depth %d, %d bytes", j.Depth(), e.size(t))
	}
}
