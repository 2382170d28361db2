package upstream_test

import (
	"sync"
	"testing"
	"time"

	"optinproxy/upstream"
)

// A connection the full pool cannot take says QUIT in the background;
// Close waits for that goroutine as well as for the pooled connections,
// so that nothing of the sender runs once Close returns. The upstream
// here answers the background QUIT only after the pooled connection has
// gone (that is, while Close runs): Close must still be waiting then.
func TestCloseWaitsForQuit(t *testing.T) {
	var (
		mu         sync.Mutex
		quits      int
		answered   int
		overflow   int // the connection that said QUIT first
		arrived    = make(chan struct{}, 2)
		bothDots   = make(chan struct{})
		firstQuit  = make(chan struct{})
		pooledGone = make(chan struct{})
	)
	srv := startLockstep(t, func(n int, cmd string) string {
		switch cmd {
		case ".": // hold both copies until two connections are busy
			arrived <- struct{}{}
			if len(arrived) == 2 {
				close(bothDots)
			}
			<-bothDots
		case "QUIT":
			mu.Lock()
			quits++
			first := quits == 1
			if first {
				overflow = n
			}
			mu.Unlock()
			if first {
				close(firstQuit)
				<-pooledGone
			}
			mu.Lock()
			answered++
			mu.Unlock()
		case "EOF":
			mu.Lock()
			if quits == 2 && n != overflow {
				close(pooledGone)
			}
			mu.Unlock()
		}
		return ""
	})
	s, err := upstream.New(upstream.Options{URL: "smtp://" + srv.addr, PoolSize: 1, Timeout: 5 * time.Second})
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
	<-firstQuit
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
