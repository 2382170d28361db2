package smtpproxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/smtpproxy"
)

// signalUpstream passes everything to the real upstream and reports on
// written once a message has been written into the upstream's DATA, that
// is while the upstream has the message and has not answered yet.
type signalUpstream struct {
	smtpproxy.Upstream
	written chan struct{}
}

func (u signalUpstream) Send(ctx context.Context, from string, to []string, msg io.WriterTo, opts *smtp.MailOptions) ([]error, error) {
	return u.Upstream.Send(ctx, from, to, signalWriter{msg, u.written}, opts)
}

type signalWriter struct {
	io.WriterTo
	written chan struct{}
}

func (w signalWriter) WriteTo(dst io.Writer) (int64, error) {
	n, err := w.WriterTo.WriteTo(dst)
	select {
	case w.written <- struct{}{}:
	default:
	}
	return n, err
}

// startSignalProxy starts a proxy whose recorder answers the final dot
// after delay, and a channel that says when a message is with it.
func startSignalProxy(t *testing.T, delay time.Duration) (*proxy, chan struct{}) {
	t.Helper()
	written := make(chan struct{}, 1)
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.Upstream = signalUpstream{Upstream: o.Upstream, written: written}
	})
	p.up.set(func(r *recorder) { r.delayData = delay })
	return p, written
}

type sendResult struct {
	text string
	err  error
}

// sendAsync runs one transaction in a goroutine on a connection of its
// own.
func sendAsync(t *testing.T, p *proxy) chan sendResult {
	c := p.dial(t)
	done := make(chan sendResult, 1)
	go func() {
		text, err := send(c, "crm@shop.example", []string{"jan@example.com"}, plainMsg)
		done <- sendResult{text, err}
	}()
	return done
}

func waitSignal(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(3 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Graceful shutdown: a transaction in flight finishes with 250 and
// Shutdown returns nil only after the upstream has the message; an idle
// client is closed at once rather than waited for; nobody new gets in.
func TestShutdownDrainsTransactionInFlight(t *testing.T) {
	p, written := startSignalProxy(t, time.Second)
	idle := dialRaw(t, p.addr)
	idle.must(250, "EHLO idle.test")

	inflight := sendAsync(t, p)
	waitSignal(t, written, "the message to reach the upstream")

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- p.srv.Shutdown(ctx)
	}()

	// The idle client is closed while the other transaction is still
	// with the upstream.
	if !idle.closed() {
		t.Error("idle client still connected during shutdown")
	}
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("idle client closed only after the transaction in flight ended (%d delivered)", n)
	}

	select {
	case r := <-inflight:
		if r.err != nil {
			t.Fatalf("transaction in flight: %v, want 250", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("transaction in flight did not finish")
	}
	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last transaction")
	}
	if n := len(p.up.deliveries()); n != 1 {
		t.Errorf("upstream has %d messages after Shutdown, want 1", n)
	}
	if c, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after Shutdown")
	}
}

// A client that connected but has not said EHLO yet is idle too: it does
// not hold Shutdown until the deadline.
func TestShutdownClosesClientBeforeEHLO(t *testing.T) {
	p := startProxy(t, nil)
	r := dialRaw(t, p.addr) // greeted, says nothing
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v with only a silent client", d)
	}
	if !r.closed() {
		t.Error("silent client still connected after Shutdown")
	}
}

// A transaction stuck with the upstream past the deadline: Shutdown
// returns ctx's error within the bound and closes what is left, so the
// stuck client learns at once (and, getting no 250, will retry).
func TestShutdownDeadline(t *testing.T) {
	p, written := startSignalProxy(t, 5*time.Second)
	stuck := sendAsync(t, p)
	waitSignal(t, written, "the message to reach the upstream")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown returned %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v with a 300ms deadline", d)
	}
	select {
	case r := <-stuck:
		t.Logf("stuck client after %v: %q %v", time.Since(start), r.text, r.err)
		if r.err == nil {
			t.Errorf("stuck transaction got %q after a forced shutdown", r.text)
		}
	case <-time.After(time.Second): // the upstream client would give up after 2s
		t.Error("stuck client still connected after Shutdown gave up")
	}
	// Shutdown out of time also aborted the upstream hand-off: the relay
	// ends at once rather than when the upstream answers (5s) or times
	// out (2s), so no copy is delivered after its client was cut off.
	deadline := time.Now().Add(time.Second)
	for p.metric(t, "optinproxy_smtp_connections", nil) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := p.metric(t, "optinproxy_smtp_connections", nil); n != 0 {
		t.Errorf("%v sessions still running a second after a forced shutdown", n)
	}
	p.up.stop()
}

// While draining, the connection of a transaction in flight gets its 250
// and is then closed, not kept for a next transaction.
func TestShutdownClosesConnectionAfterItsTransaction(t *testing.T) {
	p, written := startSignalProxy(t, time.Second)
	inflight := sendAsync(t, p)
	waitSignal(t, written, "the message to reach the upstream")
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown <- p.srv.Shutdown(ctx)
	}()
	defer func() {
		if err := <-shutdown; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	if r := <-inflight; r.err != nil {
		t.Fatalf("transaction in flight: %v", r.err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for p.metric(t, "optinproxy_smtp_connections", nil) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("connection kept open after its transaction during shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
