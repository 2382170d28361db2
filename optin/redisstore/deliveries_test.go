package redisstore

import (
	"context"
	"fmt"
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

// TestMarkField: a mark is a field of the subject's state, named by 8
// bytes of a hash of the message key, holding its until in Unix ms
// (rounded up); a mark already past is not written, and expired ones go
// once the state has grown.
func TestMarkField(t *testing.T) {
	s := openOn(t, redistest.Start(t), Options{})
	ctx := context.Background()
	a, b := addr(t, "ttl@example.com"), addr(t, "past@example.com")
	message := "mid:<ttl-test." + strings.Repeat("0", 200) + "@crm.example>"
	until := time.Now().Add(24 * time.Hour).Truncate(time.Millisecond).Add(123456 * time.Nanosecond)
	if _, err := s.Apply(ctx, []optin.Change{marked(a, message, until), marked(b, message, time.Now().Add(-time.Second))}); err != nil {
		t.Fatal(err)
	}
	field := markField(message)
	if len(field) != 9 || field[0] != 'd' {
		t.Errorf("mark field %q, want d and 8 bytes", field)
	}
	v, err := s.rdb.HGet(ctx, s.keys.state(s.sid(a)), field).Result()
	if err != nil || v != strconv.FormatInt(until.UnixMilli()+1, 10) {
		t.Errorf("mark value %q %v, want its until in ms, rounded up (%d)", v, err, until.UnixMilli()+1)
	}
	if n, err := s.rdb.HExists(ctx, s.keys.state(s.sid(b)), field).Result(); err != nil || n {
		t.Errorf("a mark already past was written: %v %v", n, err)
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

	// Thirty marks that end at once, then one more write: the state keeps
	// only the live ones.
	c := addr(t, "busy-mark@example.com")
	var changes []optin.Change
	for i := range 30 {
		changes = append(changes, marked(c, fmt.Sprintf("mid:<m%d@x>", i), time.Now().Add(50*time.Millisecond)))
	}
	if _, err := s.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if _, err := s.Apply(ctx, []optin.Change{marked(c, "mid:<last@x>", time.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	m, err := s.rdb.HGetAll(ctx, s.keys.state(s.sid(c))).Result()
	if err != nil {
		t.Fatal(err)
	}
	marks := 0
	for f := range m {
		if isMarkField(f) {
			marks++
		}
	}
	if marks != 1 {
		t.Errorf("%d marks kept after 30 expired, want the live one", marks)
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
