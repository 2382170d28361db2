package redisstore

import (
	"context"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
)

// TestEventsSinceSeeksTheFeed: Events with a Since enters the global feed
// at Since (less the clock skew it allows) instead of reading the log from
// its start, so a recent window (the breach report's) costs what it holds;
// and it still finds every event from Since on.
func TestEventsSinceSeeksTheFeed(t *testing.T) {
	srv := redistest.Start(t)
	s := openOn(t, srv, Options{})
	l := ledger(t, s)
	ctx := context.Background()
	const n = 20
	var times []time.Time
	for i := range n {
		r, err := l.Grant(ctx, addr(t, "seek%02d@example.com", i), "newsletter", optin.ConsentChange{})
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, r.Event.Time)
	}

	for _, tt := range []struct {
		name  string
		since time.Time
		want  int
	}{
		{"within the skew", times[0].Add(-30 * time.Minute), n},
		{"from the eleventh", times[10], n - 10},
	} {
		page, err := s.Events(ctx, optin.EventQuery{Since: tt.since, Limit: optin.MaxPageSize})
		if err != nil || len(page.Events) != tt.want || page.NextCursor != "" {
			t.Errorf("%s: %d events, cursor %q, %v; want %d", tt.name, len(page.Events), page.NextCursor, err, tt.want)
		}
	}

	// A window past every write examines nothing: the feed is entered
	// past its last entry. Read from the start, it would examine all n.
	pg := &pager{s: s, q: optin.EventQuery{Since: time.Now().Add(2 * feedSkew)}, limit: optin.MaxPageSize, subjects: map[string]*pagedSubject{}}
	if err := pg.feed(ctx); err != nil || pg.examined != 0 || len(pg.page.Events) != 0 {
		t.Errorf("a window after every write examined %d events and found %d (%v); want none", pg.examined, len(pg.page.Events), err)
	}
}
