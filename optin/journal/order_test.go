package journal

import (
	"context"
	"testing"
	"time"

	"optinproxy/optin"
)

// TestOrder: journaled changes reach the store in the order they were
// journaled, and while the journal is not empty, new changes go after
// them, not to the store, even when it is back.
func TestOrder(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	ctx := context.Background()
	a := addr(t, "order@example.com")
	t0 := time.Now()
	// Times run backwards, so that only the chain tells the order.
	first := receipt(a, "<first@crm.example>", t0.Add(20*time.Millisecond))
	second := receipt(a, "<second@crm.example>", t0.Add(10*time.Millisecond))
	third := receipt(a, "<third@crm.example>", t0)

	e.srv.Stop()
	for _, ch := range []optin.Change{first, second} {
		if _, err := j.Apply(ctx, []optin.Change{ch}); err != nil {
			t.Fatal(err)
		}
	}
	e.restart(t)
	res, err := j.Apply(ctx, []optin.Change{third})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Event.Hash != "" || j.Depth() != 3 {
		t.Errorf("with the journal not empty, Apply went to the store (hash %q, depth %d)", res[0].Event.Hash, j.Depth())
	}
	if n := len(history(t, e.store, a)); n != 0 {
		t.Fatalf("%d events in the store before the drain", n)
	}
	if err := j.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	byID := map[string]optin.Event{}
	for _, ev := range history(t, e.store, a) {
		byID[ev.ID] = ev
	}
	f, s, th := byID[first.Event.ID], byID[second.Event.ID], byID[third.Event.ID]
	if f.Hash == "" || s.Hash == "" || th.Hash == "" {
		t.Fatalf("missing events: %d in the history", len(byID))
	}
	if f.Prev != "" || s.Prev != f.Hash || th.Prev != s.Hash {
		t.Errorf("the chain is not first, second, third: prevs %q %q %q, hashes %q %q %q", f.Prev, s.Prev, th.Prev, f.Hash, s.Hash, th.Hash)
	}
	// Empty again: straight to the store.
	res, err = j.Apply(ctx, []optin.Change{receipt(a, "<fourth@crm.example>", time.Now())})
	if err != nil || res[0].Event.Prev != th.Hash {
		t.Errorf("Apply after the drain: %+v %v; want the store's result after the third", res, err)
	}
}
