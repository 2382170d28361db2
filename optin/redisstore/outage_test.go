package redisstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
)

// TestUnavailable: with the server gone, every method fails fast with an
// error wrapping optin.ErrUnavailable; once it is back, the same store
// works again and nothing of the failed change was written.
func TestUnavailable(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	s := openOn(t, srv, Options{})
	l := ledger(t, s)
	ctx := context.Background()
	a := addr(t, "down@example.com")
	if _, err := s.Apply(ctx, []optin.Change{grant(t, l, a, 0)}); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	lost := addr(t, "lost@example.com")
	calls := map[string]func() error{
		"Ping":  func() error { return s.Ping(ctx) },
		"Apply": func() error { _, err := s.Apply(ctx, []optin.Change{grant(t, l, lost, 1), receipt(a)}); return err },
		"Lookup": func() error {
			_, err := s.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{a, lost}, Message: "mid:<outage@example>"})
			return err
		},
		"Subject": func() error {
			_, err := s.Subject(ctx, a, 10)
			return err
		},
		"Events":       func() error { _, err := s.Events(ctx, optin.EventQuery{}); return err },
		"Suppressions": func() error { _, err := s.Suppressions(ctx, "", 0); return err },
		"Verify":       func() error { _, err := s.Verify(ctx); return err },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, optin.ErrUnavailable) {
			t.Errorf("%s with the server down: %v, want ErrUnavailable", name, err)
		}
		d := time.Since(start)
		if d > 3*time.Second {
			t.Errorf("%s with the server down took %v", name, d)
		}
		t.Logf("%s failed in %v: %v", name, d.Round(time.Millisecond), err)
	}

	srv.Restart()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after the restart: %v", err)
	}
	if _, err := s.Subject(ctx, lost, 10); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("the change that failed was stored: %v", err)
	}
	v, err := s.Subject(ctx, a, 10)
	if err != nil || len(v.Events) != 1 {
		t.Fatalf("after the restart: %+v %v", v, err)
	}
	if _, err := s.Apply(ctx, []optin.Change{receipt(a)}); err != nil {
		t.Errorf("Apply after the restart: %v", err)
	}
	if r, err := s.Verify(ctx); err != nil || r.Subjects != 1 || r.Events != 2 || len(r.Broken) != 0 {
		t.Errorf("Verify after the restart: %+v %v", r, err)
	}
}

// TestKilledMidWrite: the server is killed while writers are busy. After
// the restart every acknowledged change is there, every chain holds, the
// states agree with their lists, and the feed holds exactly the events
// in the lists: no transaction was half written.
func TestKilledMidWrite(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	s := openOn(t, srv, Options{})
	l := ledger(t, s)
	ctx := context.Background()

	var (
		mu    sync.Mutex
		acked []optin.Result
		wg    sync.WaitGroup
	)
	started := make(chan struct{}, 4)
	for w := range 4 {
		wg.Go(func() {
			for round := 0; ; round++ {
				var batch []optin.Change
				for i := range 50 {
					a := addr(t, "w%d-%d@kill.example", w, (round*25+i/2)%100)
					if i%2 == 0 {
						batch = append(batch, grant(t, l, a, round*50+i))
					} else {
						batch = append(batch, receipt(a))
					}
				}
				rs, err := s.Apply(ctx, batch)
				if err != nil {
					if !errors.Is(err, optin.ErrUnavailable) {
						t.Errorf("writer %d: %v, want ErrUnavailable", w, err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, rs...)
				mu.Unlock()
				if round == 2 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 4 {
		<-started
	}
	srv.Stop()
	wg.Wait()
	srv.Restart()

	r, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Broken) != 0 {
		t.Errorf("broken chains after the kill: %+v", r.Broken)
	}
	entries, err := s.rdb.XRange(ctx, s.keys.feed(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	feed := 0
	for _, m := range entries {
		rs, err := entryRefs(m)
		if err != nil {
			t.Fatal(err)
		}
		feed += len(rs)
	}
	if feed != r.Events {
		t.Errorf("the feed names %d events, the lists hold %d", feed, r.Events)
	}
	stored := map[string]bool{}
	for _, e := range allEvents(t, s, optin.EventQuery{}) {
		stored[e.ID] = true
	}
	var n int
	for _, res := range acked {
		if res.Applied {
			n++
			if !stored[res.Event.ID] {
				t.Errorf("acknowledged event %s lost", res.Event.ID)
			}
		}
	}
	t.Logf("%d acknowledged events, %d stored in %d subjects", n, r.Events, r.Subjects)
}

// allEvents walks every page of q.
func allEvents(t *testing.T, s *Store, q optin.EventQuery) []optin.Event {
	t.Helper()
	var out []optin.Event
	for {
		p, err := s.Events(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Events...)
		if p.NextCursor == "" {
			return out
		}
		q.Cursor = p.NextCursor
	}
}
