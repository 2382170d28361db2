package redisstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
)

// marked is a receipt for a that marks message delivered until until.
func marked(a optin.Address, message string, until time.Time) optin.Change {
	ch := receipt(a)
	ch.Delivered = &optin.Delivery{Message: message, Until: until}
	return ch
}

// TestMarkSet: a subject's marks are a sorted set in its slot, members
// 8 bytes of a hash of the message key, scores the untils in Unix ms
// (rounded up), which Redis drops whole at the last until; a mark
// already past is not written, and expired ones go with the next write.
func TestMarkSet(t *testing.T) {
	s := openOn(t, redistest.Start(t), Options{})
	ctx := context.Background()
	a, b := addr(t, "ttl@example.com"), addr(t, "past@example.com")
	message := "mid:<ttl-test." + strings.Repeat("0", 200) + "@crm.example>"
	until := time.Now().Add(24 * time.Hour).Truncate(time.Millisecond).Add(123456 * time.Nanosecond)
	if _, err := s.Apply(ctx, []optin.Change{marked(a, message, until), marked(b, message, time.Now().Add(-time.Second))}); err != nil {
		t.Fatal(err)
	}
	key := s.keys.marks(s.sid(a))
	score, err := s.rdb.ZScore(ctx, key, markMember(message)).Result()
	if err != nil || int64(score) != until.UnixMilli()+1 {
		t.Errorf("mark score %v %v, want its until in ms, rounded up (%d)", score, err, until.UnixMilli()+1)
	}
	if at, err := s.rdb.PExpireTime(ctx, key).Result(); err != nil || at.Milliseconds() != until.UnixMilli()+1 {
		t.Errorf("the marks expire at %v %v, want the mark's until", at, err)
	}
	if n, err := s.rdb.Exists(ctx, s.keys.marks(s.sid(b))).Result(); err != nil || n != 0 {
		t.Errorf("a mark already past was written: %d %v", n, err)
	}
	keys, err := s.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, "ttl-test") {
			t.Errorf("key %q holds the message key", k)
		}
	}
	st, err := s.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{a, b}, Message: message})
	if err != nil || !st[0].Delivered || st[1].Delivered {
		t.Errorf("Lookup: %+v %v", st, err)
	}

	// Thirty marks that end at once, then one more write: the set keeps
	// only the live one, and lives as long as it does.
	c := addr(t, "busy-mark@example.com")
	var changes []optin.Change
	for i := range 30 {
		changes = append(changes, marked(c, fmt.Sprintf("mid:<m%d@x>", i), time.Now().Add(50*time.Millisecond)))
	}
	if _, err := s.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	later := time.Now().Add(time.Hour)
	if _, err := s.Apply(ctx, []optin.Change{marked(c, "mid:<last@x>", later)}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.rdb.ZCard(ctx, s.keys.marks(s.sid(c))).Result(); err != nil || n != 1 {
		t.Errorf("%d marks kept after 30 expired, %v; want the live one", n, err)
	}
	if at, _ := s.rdb.PExpireTime(ctx, s.keys.marks(s.sid(c))).Result(); at.Milliseconds() != untilMilli(later) {
		t.Errorf("the marks expire at %d, want the live one's until %d", at.Milliseconds(), untilMilli(later))
	}
}

// TestMarksShared: a mark one instance writes, another sees at once,
// each judging its until by its own clock.
func TestMarksShared(t *testing.T) {
	srv := redistest.Start(t)
	var offset time.Duration
	s1 := openOn(t, srv, Options{})
	s2 := openOn(t, srv, Options{Now: func() time.Time { return time.Now().Add(offset) }})
	ctx := context.Background()
	a := addr(t, "shared-mark@example.com")
	if _, err := s1.Apply(ctx, []optin.Change{marked(a, "mid:<shared@x>", time.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	q := optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{a}, Message: "mid:<shared@x>"}
	if st, err := s2.Lookup(ctx, q); err != nil || !st[0].Delivered {
		t.Errorf("the other instance's Lookup: %+v %v", st, err)
	}
	offset = 2 * time.Hour
	if st, err := s2.Lookup(ctx, q); err != nil || st[0].Delivered {
		t.Errorf("Lookup on a clock past the until: %+v %v", st, err)
	}
}
