package webhooks

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fault is what the test receiver does with one request instead of
// answering 200: answer status (with Retry-After when set), or hang until
// the client gives up.
type fault struct {
	status     int
	retryAfter string
	hang       bool
	// lose acknowledges nothing although the event was taken: it answers
	// 500 after recording the delivery, as a receiver whose reply was lost.
	lose bool
}

// received is one request the receiver accepted (answered 2xx).
type received struct {
	header  http.Header
	body    []byte
	payload Payload
}

// receiver is a real HTTP receiver on 127.0.0.1 with knobs: a plan of
// faults used up one per request, then 200s. It verifies every signature,
// and counts duplicates: requests whose webhook-id it acknowledged before.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	plan     []fault
	fallback fault // once the plan is used up
	requests int
	accepted []received
	acked    map[string]bool
	taken    map[string]bool // ids whose event the receiver has, acked or not
	dups     int             // requests for an id acknowledged before
	badSigs  int
	arrived  chan struct{}
}

func newReceiver(t testing.TB, secret string) *receiver {
	r := &receiver{t: t, secret: secret, acked: map[string]bool{}, taken: map[string]bool{}, arrived: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// failNext queues faults for the next requests.
func (r *receiver) failNext(fs ...fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.plan = append(r.plan, fs...)
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		return
	}
	r.mu.Lock()
	r.requests++
	f := r.fallback
	if len(r.plan) > 0 {
		f, r.plan = r.plan[0], r.plan[1:]
	}
	r.mu.Unlock()
	switch {
	case f.hang:
		<-req.Context().Done()
		return
	case f.status != 0:
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		w.WriteHeader(f.status)
		io.WriteString(w, "ana@example.org is not welcome here") // must never reach an error text
		return
	}
	if err := VerifyStandard(r.secret, req.Header, body, time.Now(), 5*time.Minute); err != nil {
		r.mu.Lock()
		r.badSigs++
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get(HeaderID)
	r.mu.Lock()
	if r.acked[id] {
		r.dups++
	}
	if !r.taken[id] {
		r.accepted = append(r.accepted, received{header: req.Header.Clone(), body: body, payload: p})
	}
	r.taken[id] = true
	if !f.lose {
		r.acked[id] = true
	}
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	if f.lose {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setFallback sets what the receiver does once the plan is used up.
func (r *receiver) setFallback(f fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fallback = f
}

// snapshot returns what arrived so far.
func (r *receiver) snapshot() (accepted []received, requests, dups, badSigs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.accepted...), r.requests, r.dups, r.badSigs
}

// waitAccepted waits until n distinct deliveries arrived, at most limit.
func (r *receiver) waitAccepted(n int, limit time.Duration) []received {
	r.t.Helper()
	deadline := time.After(limit)
	for {
		acc, _, _, _ := r.snapshot()
		if len(acc) >= n {
			return acc
		}
		select {
		case <-r.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			r.t.Fatalf("%d of %d deliveries arrived in %s", len(acc), n, limit)
		}
	}
}
