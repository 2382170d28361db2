package redisstore

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
)

// TestTwoInstances: two stores on one Redis, as two proxies with one key
// file, see each other's writes at once, and concurrent writers on both
// keep every chain whole.
func TestTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	s1, s2 := openOn(t, srv, Options{}), openOn(t, srv, Options{})
	ctx := context.Background()
	l1 := ledger(t, s1)
	a := addr(t, "seen@example.com")
	rs, err := s1.Apply(ctx, []optin.Change{grant(t, l1, a, 0)})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s2.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{a}})
	if err != nil || st[0].Consent == nil || st[0].Consent.EventID != rs[0].Event.ID {
		t.Fatalf("the other instance's Lookup: %+v %v", st, err)
	}
	v, err := s2.Subject(ctx, a, 10)
	if err != nil || len(v.Events) != 1 || v.Events[0].Subject != a || v.Consents[0].Evidence == nil {
		t.Fatalf("the other instance's Subject: %+v %v", v, err)
	}

	// Writers on both instances, on shared and own subjects, one change
	// at a time and in batches; s2 gives up on whole batches at once, so
	// its conflicts go the one-subject-at-a-time way.
	s2.batchAttempts = 1
	shared := []optin.Address{addr(t, "x@shared.example"), addr(t, "y@shared.example")}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied = map[optin.Address]int{}
	)
	for w := range 6 {
		s := []*Store{s1, s2}[w%2]
		l := ledger(t, s)
		wg.Go(func() {
			own := addr(t, "w%d@own.example", w)
			for i := range 30 {
				var batch []optin.Change
				for j := range 1 + (w/2)*3 {
					switch a := shared[(i+j)%2]; (i + j) % 3 {
					case 0:
						batch = append(batch, grant(t, l, a, w*1000+i*10+j))
					case 1:
						batch = append(batch, receipt(a), receipt(own))
					default:
						batch = append(batch, suppress(a, optin.SuppressManual), receipt(a))
					}
				}
				rs, err := s.Apply(ctx, batch)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				for k, r := range rs {
					if r.Applied {
						applied[batch[k].Subject]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	total := 0
	for a, n := range applied {
		total += n
		hist := allEvents(t, s2, optin.EventQuery{Subject: a, Limit: optin.MaxPageSize})
		if len(hist) != n {
			t.Errorf("%s: %d events stored, %d applied", a, len(hist), n)
		}
	}
	r, err := s1.Verify(ctx)
	if err != nil || len(r.Broken) != 0 || r.Events != total+1 {
		t.Errorf("Verify: %+v %v; want %d events, none broken", r, err, total+1)
	}
	if feed := allEvents(t, s1, optin.EventQuery{Limit: optin.MaxPageSize}); len(feed) != total+1 {
		t.Errorf("the feed holds %d events, want %d", len(feed), total+1)
	}
}

// TestPrefix: every key is under the store's prefix, stores under other
// prefixes share nothing, and a prefix with SCAN's pattern characters
// does not make Verify count another prefix's subjects.
func TestPrefix(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	// "t*:" as a pattern would match "tx:" keys too.
	star, plain := openOn(t, srv, Options{Prefix: "t*:"}), openOn(t, srv, Options{Prefix: "tx:"})
	for i, s := range []*Store{star, plain} {
		l := ledger(t, s)
		var batch []optin.Change
		for j := range 5 + i {
			a := addr(t, "p%d@prefix.example", j)
			batch = append(batch, grant(t, l, a, j), suppress(a, optin.SuppressComplaint), receipt(a))
		}
		if _, err := s.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range []*Store{star, plain} {
		r, err := s.Verify(ctx)
		if err != nil || r.Subjects != 5+i || r.Events != 3*(5+i) {
			t.Errorf("Verify under %q: %+v %v", s.keys.prefix, r, err)
		}
		p, err := s.Suppressions(ctx, "", 100)
		if err != nil || len(p.Suppressions) != 5+i {
			t.Errorf("Suppressions under %q: %d, %v", s.keys.prefix, len(p.Suppressions), err)
		}
	}
	keys, err := star.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "t*:") && !strings.HasPrefix(k, "tx:") {
			t.Errorf("key %q outside the prefixes", k)
		}
	}
	if len(keys) != 2*5+3*(5+6) { // meta, events, supp, names, outbox of each; a state and two lists per subject
		t.Errorf("%d keys: %q", len(keys), keys)
	}

	for _, prefix := range []string{"a{b", "a}"} {
		if _, err := Open(ctx, Options{Client: testClient(srv), Keys: testKeys, Prefix: prefix}); err == nil {
			t.Errorf("Open with prefix %q: no error", prefix)
		}
	}
}

// TestOpenErrors: a missing client, and a server that accepts but never
// answers: Open fails with ErrUnavailable within the client's timeout.
func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, Options{}); err == nil {
		t.Error("Open without a client: no error")
	}
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	if _, err := Open(ctx, Options{Client: ring, Keys: testKeys}); err == nil {
		t.Error("Open on a Ring: no error")
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: l.Addr().String(), ReadTimeout: 200 * time.Millisecond, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	start := time.Now()
	_, err = Open(ctx, Options{Client: c, Keys: testKeys})
	if !errors.Is(err, optin.ErrUnavailable) || time.Since(start) > 3*time.Second {
		t.Errorf("Open on a silent server: %v after %v, want ErrUnavailable", err, time.Since(start))
	}
}

// TestRoundTrips: the budgets the issue sets, counted by the hook.
func TestRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	s := openOn(t, srv, Options{})
	ctx := context.Background()
	l := ledger(t, s)
	count := func(fn func() error) int64 {
		t.Helper()
		before := s.RoundTrips()
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		return s.RoundTrips() - before
	}
	var batch []optin.Change
	var addrs []optin.Address
	for i := range 500 {
		a := addr(t, "rt%03d@example.com", i)
		addrs = append(addrs, a)
		batch = append(batch, grant(t, l, a, i))
	}
	if n := count(func() error { _, err := s.Apply(ctx, batch); return err }); n != 2 {
		t.Errorf("Apply of 500 grants: %d round trips, want 2", n)
	}
	q := optin.LookupQuery{Purpose: "newsletter", Addresses: addrs, Message: "mid:<count@example>"}
	if n := count(func() error { _, err := s.Lookup(ctx, q); return err }); n != 1 {
		t.Errorf("Lookup of 500 with a message: %d round trips, want 1", n)
	}
	if n := count(func() error { _, err := s.Subject(ctx, addrs[0], 10); return err }); n != 1 {
		t.Errorf("Subject with its evidence among the recent events: %d round trips, want 1", n)
	}
	for _, ch := range []optin.Change{suppress(addrs[0], optin.SuppressComplaint), unsuppress(addrs[0], optin.SuppressComplaint),
		suppress(addrs[0], optin.SuppressManual)} {
		if _, err := s.Apply(ctx, []optin.Change{ch}); err != nil {
			t.Fatal(err)
		}
	}
	var v *optin.SubjectView
	if n := count(func() (err error) { v, err = s.Subject(ctx, addrs[0], 2); return err }); n != 2 {
		t.Errorf("Subject with older evidence: %d round trips, want 2", n)
	}
	if v.Consents[0].Evidence == nil || v.Consents[0].Evidence.IP != "192.0.2.1" {
		t.Errorf("evidence from an older event: %+v", v.Consents[0].Evidence)
	}
	// A batch whose changes are all stale writes nothing: one read.
	if n := count(func() error { _, err := s.Apply(ctx, batch[:10]); return err }); n != 1 {
		t.Errorf("Apply of 10 stale grants: %d round trips, want 1", n)
	}
}

// TestMemoryPerSubject keeps the state of a subject with one consent in
// Redis's compact hash encoding and under 300 bytes by MEMORY USAGE (key,
// object and value; the main dictionary's slot comes on top, see
// BenchmarkMemoryPerSubject).
func TestMemoryPerSubject(t *testing.T) {
	srv := redistest.Start(t)
	s := openOn(t, srv, Options{})
	ctx := context.Background()
	l := ledger(t, s)
	const n = 200
	var batch []optin.Change
	for i := range n {
		batch = append(batch, grant(t, l, addr(t, "member%06d@example.com", i), i))
	}
	if _, err := s.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var total int64
	for i := range n {
		key := s.keys.state(s.sid(addr(t, "member%06d@example.com", i)))
		if enc := s.rdb.ObjectEncoding(ctx, key).Val(); enc != "listpack" && enc != "ziplist" {
			t.Fatalf("state hash encoded as %q", enc)
		}
		total += s.rdb.MemoryUsage(ctx, key, 0).Val()
	}
	if avg := total / n; avg > 300 {
		t.Errorf("%d bytes per subject state, want at most 300", avg)
	} else {
		t.Logf("MEMORY USAGE: %d bytes per subject state", avg)
	}
}

// TestLeaseShared: of two instances, one holds a job's lease until it
// expires; then the other takes it.
func TestLeaseShared(t *testing.T) {
	srv := redistest.Start(t)
	s1, s2 := openOn(t, srv, Options{}), openOn(t, srv, Options{})
	ctx := context.Background()
	if held, err := s1.Lease(ctx, "job", 300*time.Millisecond); err != nil || !held {
		t.Fatalf("first Lease: %v %v", held, err)
	}
	if held, err := s2.Lease(ctx, "job", 300*time.Millisecond); err != nil || held {
		t.Fatalf("the other instance took a held lease: %v %v", held, err)
	}
	if held, err := s1.Lease(ctx, "job", 300*time.Millisecond); err != nil || !held {
		t.Fatalf("the holder's renewal: %v %v", held, err)
	}
	time.Sleep(400 * time.Millisecond)
	if held, err := s2.Lease(ctx, "job", time.Minute); err != nil || !held {
		t.Fatalf("the other instance after the lease ran out: %v %v", held, err)
	}
	if held, _ := s1.Lease(ctx, "job", time.Minute); held {
		t.Error("the first instance took the lease back from its new holder")
	}
}

// A server that lost its scripts (restarted, or SCRIPT FLUSH) gets the
// write script's text: the write goes through, in one more round trip.
func TestApplyAfterScriptFlush(t *testing.T) {
	s := openOn(t, redistest.Start(t), Options{})
	ctx := context.Background()
	a := addr(t, "flush@example.com")
	if _, err := s.Apply(ctx, []optin.Change{grant(t, ledger(t, s), a, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(ctx, []optin.Change{receipt(a)})
	if err != nil || !res[0].Applied {
		t.Fatalf("Apply after SCRIPT FLUSH: %+v, %v", res, err)
	}
	v, err := s.Subject(ctx, a, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Events) != 2 || v.Events[1].Type != optin.EventMessageRelayed {
		t.Errorf("events after SCRIPT FLUSH: %+v", v.Events)
	}
}
