package redisstore

import (
	"context"
	"strconv"
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

// TestMarkTTL: a mark is a key of its own in the subject's slot, named by
// a hash of the message key, holding its until, that Redis expires by
// itself at its until; a mark already past is not written.
func TestMarkTTL(t *testing.T) {
	s := openOn(t, redistest.Start(t), Options{})
	ctx := context.Background()
	a, b := addr(t, "ttl@example.com"), addr(t, "past@example.com")
	message := "mid:<ttl-test." + strings.Repeat("0", 200) + "@crm.example>"
	until := time.Now().Add(24 * time.Hour).Truncate(time.Millisecond).Add(123456 * time.Nanosecond)
	if _, err := s.Apply(ctx, []optin.Change{marked(a, message, until), marked(b, message, time.Now().Add(-time.Second))}); err != nil {
		t.Fatal(err)
	}

	key := s.keys.delivered(s.sid(a), message)
	if want := s.keys.prefix + "{" + s.sid(a) + "}:d:"; !strings.HasPrefix(key, want) || len(key) != len(want)+32 {
		t.Errorf("mark key %q, want %q and 32 hex digits", key, want)
	}
	ttl, err := s.rdb.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 23*time.Hour || ttl > 24*time.Hour+time.Second {
		t.Errorf("PTTL of the mark: %s, want about 24h", ttl)
	}
	at, err := s.rdb.PExpireTime(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := until.UnixMilli() + 1; at.Milliseconds() != want {
		t.Errorf("mark expires at %d ms, want %d (its until rounded up)", at.Milliseconds(), want)
	}
	if v, err := s.rdb.Get(ctx, key).Result(); err != nil || v != strconv.FormatInt(until.UnixNano(), 10) {
		t.Errorf("mark value %q %v, want its until in ns", v, err)
	}
	if n, err := s.rdb.Exists(ctx, s.keys.delivered(s.sid(b), message)).Result(); err != nil || n != 0 {
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
