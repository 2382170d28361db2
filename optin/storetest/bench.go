package storetest

import (
	"fmt"
	"testing"
	"time"

	"optinproxy/optin"
)

// importBatch is how many rows BenchImport applies per Apply, as an
// import of a CSV file does.
const importBatch = 500

// BenchLookup seeds n subjects in s, each granted the newsletter, and
// measures Lookup of all n addresses at once. Besides ns/op it reports
// ns/addr.
func BenchLookup(b *testing.B, s optin.Store, n int) {
	f := newFixture(b, s)
	addrs := make([]optin.Address, n)
	for i := range addrs {
		addrs[i] = f.addr(fmt.Sprintf("bench%07d@lookup.example", i))
	}
	for start := 0; start < n; start += importBatch {
		var batch []optin.Change
		for _, a := range addrs[start:min(start+importBatch, n)] {
			batch = append(batch, f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
		}
		f.apply(batch...)
	}
	b.ReportAllocs()
	for b.Loop() {
		st, err := s.Lookup(f.ctx, optin.LookupQuery{Purpose: newsletter, Addresses: addrs})
		if err != nil || len(st) != n || st[n-1].Consent == nil {
			b.Fatalf("Lookup: %d standings, %v", len(st), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/addr")
}

// BenchImport applies rows grants to new subjects per iteration, in
// batches of 500 as an import does, and reports rows/s. Building the
// changes with the ledger is part of the measure, as it is of an import.
func BenchImport(b *testing.B, s optin.Store, rows int) {
	f := newFixture(b, s)
	iteration := 0
	for b.Loop() {
		for start := 0; start < rows; start += importBatch {
			batch := make([]optin.Change, 0, importBatch)
			for i := start; i < min(start+importBatch, rows); i++ {
				a := f.addr(fmt.Sprintf("row%d-%07d@import.example", iteration, i))
				batch = append(batch, f.grant(a, newsletter, optin.ConsentChange{
					At: f.ago(time.Hour), Source: optin.SourceImport,
					Evidence: optin.Evidence{IP: "192.0.2.10", PolicyVersion: "2025-06"},
				}))
			}
			f.apply(batch...)
		}
		iteration++
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
