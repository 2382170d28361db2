package journal

import (
	"context"
	"testing"
	"time"

	"optinproxy/optin"
)

// TestAmbiguousWrite: changes the store did take, though the journal
// holds them too (a write whose reply was lost), are not written twice
// by the drain; those it did not take are.
func TestAmbiguousWrite(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	ctx := context.Background()
	var changes []optin.Change
	for i := range 6 {
		changes = append(changes, receipt(addr(t, "amb%d@example.com", i%3), "<amb@crm.example>", time.Now().Add(time.Duration(i)*time.Millisecond)))
	}
	// The store took the first four (all three subjects), then "failed".
	if _, err := e.store.Apply(ctx, changes[:4]); err != nil {
		t.Fatal(err)
	}
	own, err := j.prepare(changes)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.append(own); err != nil {
		t.Fatal(err)
	}
	if j.Depth() != 6 {
		t.Fatalf("depth %d, want 6", j.Depth())
	}
	if err := j.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e.store, changes)
	for i := range 3 {
		if n := len(history(t, e.store, changes[i].Subject)); n != 2 {
			t.Errorf("subject %d: %d events, want 2", i, n)
		}
	}
	// A crash after the drain, before the truncation: the same frames
	// drain again, and again nothing is written twice.
	if err := j.append(own); err != nil {
		t.Fatal(err)
	}
	if err := j.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e.store, changes)
	if r, err := e.store.Verify(ctx); err != nil || len(r.Broken) != 0 || r.Receipts != 6 {
		t.Errorf("Verify: %+v %v; want 6 receipts, no broken chain", r, err)
	}
}
