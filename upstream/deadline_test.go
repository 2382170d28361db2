package upstream_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"optinproxy/upstream"
)

// The timeout bounds each command and its reply, not the whole
// envelope: a lock-step upstream answering five RCPTs at 150ms each
// stays within a 500ms timeout.
func TestTimeoutIsPerCommand(t *testing.T) {
	srv := startLockstep(t, func(_ int, cmd string) string {
		if strings.HasPrefix(cmd, "RCPT") {
			time.Sleep(150 * time.Millisecond) // a slow upstream
		}
		return ""
	})
	s := newSender(t, upstream.Options{URL: "smtp://" + srv.addr, Timeout: 500 * time.Millisecond})
	to := []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Send(ctx, "crm@shop.example", to, testMsg, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.messages()); n != 1 {
		t.Errorf("upstream got %d messages", n)
	}
}

// The reply to the final dot may take longer than a command (the
// upstream may scan the message): by default it gets minutes, not the
// command timeout; DotTimeout sets it, never below the command timeout,
// and an upstream silent past it loses the reply (maybe delivered).
func TestDotTimeout(t *testing.T) {
	for _, tc := range []struct {
		name       string
		timeout    time.Duration
		dotTimeout time.Duration
		silent     bool // the upstream never answers the dot
	}{
		{"default", 100 * time.Millisecond, 0, false},
		{"raised to the command timeout", 600 * time.Millisecond, time.Millisecond, false},
		{"set", 100 * time.Millisecond, time.Second, false},
		{"exceeded", 100 * time.Millisecond, 300 * time.Millisecond, true},
	} {
		srv := startLockstep(t, func(_ int, cmd string) string {
			if cmd == "." {
				if tc.silent {
					<-t.Context().Done()
				}
				time.Sleep(300 * time.Millisecond) // scanning the message
			}
			return ""
		})
		s := newSender(t, upstream.Options{URL: "smtp://" + srv.addr, Timeout: tc.timeout, DotTimeout: tc.dotTimeout})
		_, err := sendOne(s)
		var md interface{ MaybeDelivered() bool }
		switch {
		case tc.silent && (err == nil || !errors.As(err, &md)):
			t.Errorf("%s: %v, want a lost reply", tc.name, err)
		case !tc.silent && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// onSecondMail is a lockstep script that answers the second MAIL of a
// connection with act (the first goes through): the connection is then
// pooled, as the tests of reuse need.
func onSecondMail(act func() string) func(n int, cmd string) string {
	var mu sync.Mutex
	mails := map[int]int{}
	return func(n int, cmd string) string {
		if !strings.HasPrefix(cmd, "MAIL") {
			return ""
		}
		mu.Lock()
		mails[n]++
		second := mails[n] == 2
		mu.Unlock()
		if second {
			return act()
		}
		return ""
	}
}

// A pooled connection that stalls is a failed attempt, not a stale
// connection: Send does not try again on a fresh one, which would let
// an upstream take far longer than the timeout.
func TestStalledPooledConnectionIsNotRetried(t *testing.T) {
	srv := startLockstep(t, onSecondMail(func() string {
		<-t.Context().Done()
		return ""
	}))
	s := newSender(t, upstream.Options{URL: "smtp://" + srv.addr, Timeout: 300 * time.Millisecond})
	if _, err := sendOne(s); err != nil {
		t.Fatal(err)
	}
	_, err := sendOne(s)
	if err == nil {
		t.Fatal("second send succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("error %v is not a timeout", err)
	}
	if n := srv.connCount(); n != 1 {
		t.Errorf("the upstream saw %d connections, want 1 (no retry)", n)
	}
	if n := len(srv.messages()); n != 1 {
		t.Errorf("the upstream got %d messages, want 1", n)
	}
}

// A pooled connection the upstream closed while it was idle is tried
// once more on a fresh one: nothing of the message had gone out.
func TestClosedPooledConnectionIsRetried(t *testing.T) {
	srv := startLockstep(t, onSecondMail(func() string { return hangUp }))
	s := newSender(t, upstream.Options{URL: "smtp://" + srv.addr})
	for i := 0; i < 2; i++ {
		if _, err := sendOne(s); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.connCount(); n != 2 {
		t.Errorf("the upstream saw %d connections, want 2", n)
	}
	if n := len(srv.messages()); n != 2 {
		t.Errorf("the upstream got %d messages, want 2", n)
	}
}

// Cancelling Send's context interrupts a stalled conversation, however
// long the timeouts: before the message (a plain failure) and while
// waiting for the reply to the dot (maybe delivered).
func TestCancelInterruptsStall(t *testing.T) {
	for _, at := range []string{"MAIL", "RCPT", "."} {
		stalled := make(chan struct{})
		var once sync.Once
		srv := startLockstep(t, func(_ int, cmd string) string {
			if strings.HasPrefix(cmd, at) {
				once.Do(func() { close(stalled) })
				<-t.Context().Done()
			}
			return ""
		})
		s := newSender(t, upstream.Options{URL: "smtp://" + srv.addr, Timeout: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := s.Send(ctx, "crm@shop.example", []string{"a@example.com"}, testMsg, nil)
			done <- err
		}()
		<-stalled
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("stalled at %s: Send did not return after cancel", at)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("stalled at %s: %v, want context.Canceled", at, err)
		}
		var md interface{ MaybeDelivered() bool }
		if maybe := errors.As(err, &md); maybe != (at == ".") {
			t.Errorf("stalled at %s: %v: maybe delivered %v", at, err, maybe)
		}
	}
}
