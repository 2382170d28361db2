package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"optinproxy/optin"
)

const (
	// seedSubjects is how many subjects' changes one Apply of Seed
	// carries: a store splits them into its own batches (Redis: 500
	// changes a script) and shares the round trips.
	seedSubjects = 1000
	// seedWriters are the Apply calls Seed keeps going at once, so that
	// building and sealing changes overlaps the store's writes.
	seedWriters = 4
)

// SeedAddress is the address Seed gives subject i.
func SeedAddress(i int) optin.Address {
	a, err := optin.ParseAddress(fmt.Sprintf("seed%07d@sweep.example", i))
	if err != nil {
		panic(err) // a fixed form that parses
	}
	return a
}

// SeedLedger is a ledger on s with the suite's purposes, for building the
// changes Seed writes: newsletter (consent, marketing, 730 days'
// retention), doi (consent, double opt-in, no retention), offers
// (legitimate interests) and orders (contract, transactional). Its clock
// is now.
func SeedLedger(tb testing.TB, s optin.Store, now func() time.Time) *optin.Ledger {
	tb.Helper()
	l, err := optin.NewLedger(optin.LedgerOptions{Store: s, Purposes: purposes, PolicyVersion: policy, Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// Seed writes n subjects into s fast, for the benchmarks of the sweepers
// (retention, receipt pruning, erasure): changes(i, SeedAddress(i)) are
// subject i's changes (as built by a SeedLedger, receipts, ...), written
// through the store's own Apply in batches of a few thousand from several
// writers at once. It returns how long it took; the first error fails tb.
// changes is called from several goroutines.
func Seed(tb testing.TB, s optin.Store, n int, changes func(i int, a optin.Address) []optin.Change) time.Duration {
	tb.Helper()
	start := time.Now()
	next := make(chan int)
	go func() {
		defer close(next)
		for from := 0; from < n; from += seedSubjects {
			next <- from
		}
	}()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range seedWriters {
		wg.Go(func() {
			for from := range next {
				var batch []optin.Change
				for i := from; i < min(from+seedSubjects, n); i++ {
					batch = append(batch, changes(i, SeedAddress(i))...)
				}
				if _, err := s.Apply(tb.Context(), batch); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("seeding subjects %d to %d: %w", from, from+seedSubjects, err)
					}
					mu.Unlock()
					for range next { // drain, so the feeder ends
					}
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
	return time.Since(start)
}

// GrantedWithReceipts returns, for Seed, the changes of a subject granted
// the newsletter (by l, a SeedLedger) that then had receipts messages
// relayed to it: the ledger of the copy benchmarks and tests.
func GrantedWithReceipts(l *optin.Ledger, receipts int) func(i int, a optin.Address) []optin.Change {
	return func(i int, a optin.Address) []optin.Change {
		ch, err := l.GrantChange(a, newsletter, optin.ConsentChange{Source: "import", Actor: "seed"})
		if err != nil {
			panic(err) // a purpose of the suite's own
		}
		out := []optin.Change{ch}
		for k := range receipts {
			out = append(out, optin.Receipt{Subject: a, Purpose: newsletter, Actor: "smtp:crm", Time: time.Now(),
				Decision: optin.Decision{Allow: true, Reason: optin.ReasonConsent}, Relayed: true,
				Details: optin.ReceiptDetails{MessageID: fmt.Sprintf("<%d.%d@seed.example>", i, k)}}.Change())
		}
		return out
	}
}
