package optin_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"

	"optinproxy/optin"
)

// SetPurposes puts a purpose added in force for the next change and takes
// a removed one away; an invalid set changes nothing.
func TestLedgerSetPurposes(t *testing.T) {
	ctx := context.Background()
	l := moveLedger(t)
	jan, _ := optin.ParseAddress("jan@example.com")
	if _, err := l.Grant(ctx, jan, "events", optin.ConsentChange{Source: "api"}); !errors.Is(err, optin.ErrUnknownPurpose) {
		t.Fatalf("grant of a purpose not yet configured: %v", err)
	}
	more := maps.Clone(movePurposes)
	more["events"] = optin.Purpose{Name: "events", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true}
	delete(more, "offers")
	if err := l.SetPurposes(more); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Grant(ctx, jan, "events", optin.ConsentChange{Source: "api"}); err != nil {
		t.Errorf("grant of the purpose added: %v", err)
	}
	if _, err := l.Grant(ctx, jan, "offers", optin.ConsentChange{Source: "api"}); !errors.Is(err, optin.ErrUnknownPurpose) {
		t.Errorf("grant of the purpose removed: %v", err)
	}
	bad := optin.Purposes{"x": {Name: "y", Basis: optin.BasisConsent, Category: optin.CategoryMarketing}}
	if err := l.SetPurposes(bad); err == nil {
		t.Error("a purpose listed under another name was taken")
	}
	if _, ok := l.Purposes()["events"]; !ok {
		t.Error("a refused set replaced the purposes")
	}
}

// Changes while the purposes are replaced: run with -race.
func TestLedgerSetPurposesWhileChanging(t *testing.T) {
	ctx := context.Background()
	l := moveLedger(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			ps := movePurposes
			if i%2 == 1 {
				ps = maps.Clone(movePurposes)
				delete(ps, "offers")
			}
			if err := l.SetPurposes(ps); err != nil {
				t.Error(err)
			}
		}
	})
	for w := range 2 {
		wg.Go(func() {
			for i := range 10 {
				a, _ := optin.ParseAddress(fmt.Sprintf("s%d-%d@example.com", w, i))
				if _, err := l.Grant(ctx, a, "newsletter", optin.ConsentChange{Source: "api"}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}
