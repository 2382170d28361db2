package journal

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// TestStuckChange: a journaled change whose subject's data is corrupt in
// the store is set aside, alone, by the drain; the changes around it are
// stored, and Lookup works again.
func TestStuckChange(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	ctx := context.Background()
	a, b, c := addr(t, "a@example.com"), addr(t, "corrupt@example.com"), addr(t, "c@example.com")
	now := time.Now()
	changes := []optin.Change{receipt(a, "<s@x>", now), receipt(b, "<s@x>", now), receipt(c, "<s@x>", now)}

	// b's state is not a hash: the store answers WRONGTYPE (ErrCorrupt).
	rdb := redis.NewClient(&redis.Options{Addr: e.srv.Addr})
	defer rdb.Close()
	if err := rdb.Set(ctx, "optin:{"+testKeys.Get().SubjectID(b)+"}:s", "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := j.Apply(ctx, changes)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if j.Depth() != 3 || res[1].Event.Hash != "" {
		t.Fatalf("depth %d: the batch was not journaled", j.Depth())
	}
	if _, err := j.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{a}}); err != nil {
		t.Fatalf("Lookup (which drains): %v", err)
	}
	checkStored(t, e.store, []optin.Change{changes[0], changes[2]})
	if j.Depth() != 0 || e.size(t) != 0 || j.SetAside() != 1 {
		t.Errorf("after the drain: depth %d, %d bytes, %d set aside; want 0, 0, 1", j.Depth(), e.size(t), j.SetAside())
	}
	side, err := os.ReadFile(e.path + ".damaged")
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := decodeFrame(j.aead, side)
	if err != nil || n != len(side) || len(got) != 1 || got[0].Event.ID != changes[1].Event.ID {
		t.Errorf("side file: %d changes in %d of %d bytes (%v); want b's receipt alone", len(got), n, len(side), err)
	}
	if !strings.Contains(e.logs.String(), "set aside: the store cannot take them") {
		t.Errorf("nothing logged:\n%s", e.logs.String())
	}
}
