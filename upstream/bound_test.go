package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"optinproxy/upstream"
)

// sendMany sends n distinct messages at once and checks that each
// reached srv exactly once.
func sendMany(t *testing.T, s upstream.Sender, srv *lockstepServer, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			body := msg(fmt.Sprintf("Subject: copy %d\r\n\r\nbody\r\n", i))
			if _, err := s.Send(ctx, "crm@shop.example", []string{"a@example.com"}, body, nil); err != nil {
				t.Errorf("copy %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, d := range srv.messages() {
		seen[string(d)]++
	}
	for i := range n {
		if k := fmt.Sprintf("Subject: copy %d\r\n\r\nbody\r\n", i); seen[k] != 1 {
			t.Errorf("copy %d arrived %d times", i, seen[k])
		}
	}
}

// With a pool of N, many senders at once never make the upstream see
// more than N connections: the first N hold theirs at the final dot
// until all N are busy, so every other sender finds none free and must
// wait rather than dial.
func TestPoolBoundsConnections(t *testing.T) {
	const size, senders = 3, 24
	var (
		mu      sync.Mutex
		dots    int
		allBusy = make(chan struct{})
	)
	srv := startLockstep(t, func(_ int, cmd string) string {
		if cmd == "." {
			mu.Lock()
			dots++
			if dots == size {
				close(allBusy)
			}
			mu.Unlock()
			<-allBusy
		}
		return ""
	})
	s := newSender(t, upstream.Options{URL: "smtp://" + srv.addr, PoolSize: size, Timeout: 5 * time.Second})
	sendMany(t, s, srv, senders)
	if n := srv.connCount(); n != size {
		t.Errorf("the upstream saw %d connections, want %d", n, size)
	}
}

// Connections the upstream drops while idle are replaced within the
// bound: the retry on a fresh connection keeps the slot of the stale one.
func TestPoolBoundWithStaleConnections(t *testing.T) {
	const size, senders = 2, 20
	srv := startLockstep(t, onSecondMail(func() string { return hangUp }))
	s := newSender(t, upstream.Options{URL: "smtp://" + srv.addr, PoolSize: size, Timeout: 5 * time.Second})
	sendMany(t, s, srv, senders)
	if n := srv.mostOpen(); n > size {
		t.Errorf("the upstream saw %d connections at once, want at most %d", n, size)
	}
	if n := srv.connCount(); n <= size {
		t.Errorf("the upstream saw %d connections in all; the test meant to make it drop some", n)
	}
}

// A sender that finds every connection busy until its context ends gets
// an error that says so, sends nothing, and leaves the pool as it was:
// the busy connection serves the next message.
func TestWaiterGivesUpWithItsContext(t *testing.T) {
	srv, s, release, held := holdOnlyConnection(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Send(ctx, "crm@shop.example", []string{"b@example.com"}, msg("Subject: waiter\r\n\r\nx\r\n"), nil)
	if !errors.Is(err, upstream.ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter: %v, want ErrBusy and the deadline", err)
	}
	if err != nil && !strings.Contains(err.Error(), "1 connections to "+srv.addr+" stayed busy") {
		t.Errorf("waiter: %q does not say the connections were busy", err)
	}
	// A context that has ended already gets the same, without waiting.
	done, stop := context.WithCancel(context.Background())
	stop()
	if _, err := s.Send(done, "crm@shop.example", []string{"b@example.com"}, testMsg, nil); !errors.Is(err, upstream.ErrBusy) || !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: %v, want ErrBusy and Canceled", err)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if _, err := sendOne(s); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	if n := srv.connCount(); n != 1 {
		t.Errorf("the upstream saw %d connections, want 1", n)
	}
	if got := srv.messages(); len(got) != 2 || strings.Contains(string(got[0])+string(got[1]), "waiter") {
		t.Errorf("the upstream got %d messages (%q), want the two that were not given up", len(got), got)
	}
}

// Ping waits for its turn like a Send, and gives up with its context.
func TestPingWaitsForAConnection(t *testing.T) {
	srv, s, release, held := holdOnlyConnection(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ping(ctx); !errors.Is(err, upstream.ErrBusy) {
		t.Errorf("ping while busy: %v, want ErrBusy", err)
	}
	pinged := make(chan error, 1)
	go func() { pinged <- s.Ping(context.Background()) }()
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-pinged; err != nil {
		t.Errorf("ping after the send: %v", err)
	}
	if n := srv.connCount(); n != 1 {
		t.Errorf("the upstream saw %d connections, want 1", n)
	}
}

// holdOnlyConnection starts an upstream and a sender with a pool of one,
// and sends a message whose final dot the upstream leaves unanswered until
// release is closed: the one connection is busy. held gets that send's
// result.
func holdOnlyConnection(t *testing.T) (*lockstepServer, upstream.Sender, chan struct{}, chan error) {
	t.Helper()
	var (
		first   = make(chan struct{})
		release = make(chan struct{})
		once    sync.Once
	)
	srv := startLockstep(t, func(_ int, cmd string) string {
		if cmd == "." {
			once.Do(func() {
				close(first)
				<-release
			})
		}
		return ""
	})
	s := newSender(t, upstream.Options{URL: "smtp://" + srv.addr, PoolSize: 1, Timeout: 5 * time.Second})
	held := make(chan error, 1)
	go func() {
		_, err := sendOne(s)
		held <- err
	}()
	<-first
	return srv, s, release, held
}
