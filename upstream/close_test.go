package upstream_test

import (
	"sync"
	"testing"
	"time"

	"optinproxy/upstream"
)

// Close says QUIT on the idle connections all at once and returns only
// when each was answered: the upstream here answers neither QUIT before
// both arrived, so a Close that quit one connection after the other, or
// did not wait, fails.
func TestCloseWaitsForQuit(t *testing.T) {
	var (
		mu       sync.Mutex
		answered int
		arrived  = make(chan struct{}, 2)
		bothDots = make(chan struct{})
		quits    = make(chan struct{}, 2)
		bothQuit = make(chan struct{})
	)
	// both lets each caller through once two have arrived at ch.
	both := func(ch chan struct{}, all chan struct{}) {
		mu.Lock()
		ch <- struct{}{}
		if len(ch) == 2 {
			close(all)
		}
		mu.Unlock()
		<-all
	}
	srv := startLockstep(t, func(n int, cmd string) string {
		switch cmd {
		case ".": // hold both copies until two connections are busy
			both(arrived, bothDots)
		case "QUIT":
			both(quits, bothQuit)
			mu.Lock()
			answered++
			mu.Unlock()
		}
		return ""
	})
	s, err := upstream.New(upstream.Options{URL: "smtp://" + srv.addr, PoolSize: 2, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Go(func() {
			if _, err := sendOne(s); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	if answered != 2 {
		t.Errorf("Close returned with %d of 2 QUITs answered", answered)
	}
	if n := srv.connCount(); n != 2 {
		t.Errorf("the upstream saw %d connections, want 2", n)
	}
}

// Close returns although the upstream never answers QUIT: the wait is
// bounded by the command timeout.
func TestCloseBoundedBySilentUpstream(t *testing.T) {
	srv := startLockstep(t, func(_ int, cmd string) string {
		if cmd == "QUIT" {
			<-t.Context().Done()
		}
		return ""
	})
	s, err := upstream.New(upstream.Options{URL: "smtp://" + srv.addr, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sendOne(s); err != nil {
		t.Fatal(err)
	}
	s.Close()
}
