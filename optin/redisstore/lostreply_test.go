package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
)

// openLossy opens a store on srv through a replyProxy, with go-redis's
// own retries set to maxRetries (-1: none), writing as on Cluster (one
// script per subject) when perSubject; and a store on srv directly, to
// check what was written. A lost reply costs the read timeout, short
// for the test's sake but long enough that nothing else times out on a
// loaded machine.
func openLossy(t *testing.T, srv *redistest.Server, maxRetries int, perSubject bool) (lossy, direct *Store, p *replyProxy) {
	t.Helper()
	p = startReplyProxy(t, srv.Addr)
	c := redis.NewClient(&redis.Options{
		Addr:          p.Addr,
		DialTimeout:   time.Second,
		ReadTimeout:   time.Second,
		WriteTimeout:  time.Second,
		MaxRetries:    maxRetries,
		DialerRetries: 1,
	})
	s, err := Open(context.Background(), Options{Client: c, Keys: testKeys})
	if err != nil {
		c.Close()
		t.Fatalf("Open: %v", err)
	}
	s.cluster = perSubject
	t.Cleanup(func() { s.Close() })
	return s, openOn(t, srv, Options{Client: patientClient(srv)}), p
}

// eachPath runs fn on one node's path and on the per-subject path.
func eachPath(t *testing.T, fn func(t *testing.T, perSubject bool)) {
	for _, per := range []bool{false, true} {
		t.Run(fmt.Sprintf("perSubject=%v", per), func(t *testing.T) { fn(t, per) })
	}
}

// wantLedger checks that Verify finds subjects and events, nothing
// broken, and that no event id is stored twice.
func wantLedger(t *testing.T, s *Store, subjects, events int) {
	t.Helper()
	r, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Subjects != subjects || r.Events != events || len(r.Broken) != 0 {
		t.Errorf("Verify = %d subjects, %d events, broken %v; want %d, %d, none", r.Subjects, r.Events, r.Broken, subjects, events)
	}
	seen := map[string]bool{}
	for _, e := range allEvents(t, s, optin.EventQuery{}) {
		if seen[e.ID] {
			t.Errorf("event %s listed twice", e.ID)
		}
		seen[e.ID] = true
	}
}

// wantStored checks that each applied result's event is stored with its
// hash, and that every result is applied.
func wantStored(t *testing.T, s *Store, changes []optin.Change, rs []optin.Result) {
	t.Helper()
	byID := map[string]optin.Event{}
	for _, e := range allEvents(t, s, optin.EventQuery{}) {
		byID[e.ID] = e
	}
	for i, r := range rs {
		if !r.Applied {
			t.Errorf("change %d (%s) reported not applied", i, changes[i].Event.Type)
			continue
		}
		got, ok := byID[r.Event.ID]
		if !ok || got.Hash != r.Event.Hash || got.Prev != r.Event.Prev {
			t.Errorf("change %d: result event %s (hash %.8s) is not the stored one %+v", i, r.Event.ID, r.Event.Hash, got)
		}
	}
}

// TestLostReplyReceipts: the relay's receipts (600, so two batches),
// whose first script's reply is lost after Redis ran it, are appended
// once, reported applied, and still take one write per batch.
func TestLostReplyReceipts(t *testing.T) {
	eachPath(t, func(t *testing.T, perSubject bool) {
		srv := redistest.Start(t)
		s, check, p := openLossy(t, srv, 1, perSubject)
		ctx := context.Background()
		var addrs []optin.Address
		var changes []optin.Change
		for i := range 600 {
			a := addr(t, "lost%d@receipts.example", i)
			addrs = append(addrs, a)
			changes = append(changes, receipt(a))
		}
		if _, err := s.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: addrs}); err != nil {
			t.Fatal(err)
		}
		p.loseNext(1)
		rs, err := s.Apply(ctx, changes)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if p.lostReplies() != 1 {
			t.Fatalf("the proxy lost %d replies, want 1", p.lostReplies())
		}
		wantStored(t, check, changes, rs)
		wantLedger(t, check, 600, 600)
	})
}

// TestLostReplyConsent: consent changes whose script's reply was lost
// (after Redis ran it) are reported applied with the events as stored,
// whether go-redis sends the script again or the store learns the
// outcome itself; nothing is appended twice.
func TestLostReplyConsent(t *testing.T) {
	for _, tc := range []struct {
		name             string
		maxRetries, lose int
	}{
		{"go-redis sends again", 1, 1},
		{"no go-redis retries", -1, 1},
		{"go-redis's retry lost too", 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachPath(t, func(t *testing.T, perSubject bool) {
				srv := redistest.Start(t)
				s, check, p := openLossy(t, srv, tc.maxRetries, perSubject)
				ctx := context.Background()
				l := ledger(t, s)
				a, b := addr(t, "known@consent.example"), addr(t, "new@consent.example")
				if _, err := s.Apply(ctx, []optin.Change{grant(t, l, a, 0), receipt(a)}); err != nil {
					t.Fatal(err)
				}
				w, err := l.WithdrawChange(a, "newsletter", optin.ConsentChange{Source: optin.SourceForm, At: time.Now()})
				if err != nil {
					t.Fatal(err)
				}
				changes := []optin.Change{w, grant(t, l, b, 1), suppress(b, optin.SuppressComplaint), receipt(a)}
				p.loseNext(tc.lose)
				rs, err := s.Apply(ctx, changes)
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if p.lostReplies() == 0 {
					t.Fatal("the proxy lost no reply")
				}
				wantStored(t, check, changes, rs)
				if rs[0].Consent == nil || rs[0].Consent.Status != optin.StatusWithdrawn || rs[1].Consent == nil || rs[1].Consent.Status != optin.StatusGranted {
					t.Errorf("records reported: %+v, %+v", rs[0].Consent, rs[1].Consent)
				}
				wantLedger(t, check, 2, 6)
			})
		})
	}
}

// TestLostReplyCallerRetry: when Redis ran the script and then stopped
// answering, Apply fails with ErrUnavailable; the caller's retry of the
// same changes with their event ids and Once appends nothing twice.
func TestLostReplyCallerRetry(t *testing.T) {
	eachPath(t, func(t *testing.T, perSubject bool) {
		srv := redistest.Start(t)
		s, check, p := openLossy(t, srv, 1, perSubject)
		ctx := context.Background()
		l := ledger(t, s)
		a := addr(t, "caller@retry.example")
		changes := []optin.Change{grant(t, l, a, 0), receipt(a)}
		for i := range changes {
			// As the journal does: the id from the event's own time (a
			// receipt's time is its id's), so that the retry is the
			// same event.
			at := changes[i].Event.Time
			if at.IsZero() {
				at = time.Now()
				changes[i].Event.Time = at
			}
			changes[i].Event.ID = optin.NewEventID(at)
			changes[i].Once = true
		}
		p.silenceAfterNext()
		if _, err := s.Apply(ctx, changes); !errors.Is(err, optin.ErrUnavailable) {
			t.Fatalf("Apply while Redis is silent: %v, want ErrUnavailable", err)
		}
		p.speak()
		rs, err := s.Apply(ctx, changes)
		if err != nil {
			t.Fatalf("the caller's retry: %v", err)
		}
		for i, r := range rs {
			if r.Applied {
				t.Errorf("the retry of change %d applied it again", i)
			}
		}
		wantLedger(t, check, 1, 2)
	})
}
