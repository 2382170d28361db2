package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"optinproxy/optin"
)

// receiptRetention is policy.receipt_retention's default.
const receiptRetention = 400 * day

// BenchSweeps seeds n subjects into s (Seed) and times one pass of each
// sweeper over them, as the background jobs run them:
//
//   - every subject has one consent and one receipt;
//   - one in every 1/due subjects is due for the retention sweep, by
//     turns a notice (it expires in ten days), an expiry (it expired a
//     day ago) and a double opt-in pending for eight days; the others were
//     granted an hour ago;
//   - as many others have a receipt older than policy.receipt_retention.
//
// It reports the seconds and subjects per second of the retention sweep
// (retention-), of the same sweep again with nothing left due
// (idle-), and of the receipt pruning (prune-), and checks what each
// recorded. Run it with -benchtime 1x: it makes one pass of each whatever
// b.N. seeded, when not nil, is called once the subjects are written and
// before the passes, for the store's own figures (its memory), which the
// caller reports after BenchSweeps returns (b.ResetTimer would drop them).
func BenchSweeps(b *testing.B, s optin.Store, n int, due float64, seeded func()) {
	period := int(1 / due)
	if period < 3 || n < 3*period {
		b.Fatalf("BenchSweeps: %d subjects, one in %d due: too few to be due each way", n, period)
	}
	base := time.Now().UTC()
	l := SeedLedger(b, s, func() time.Time { return base })
	want := optin.SweepReport{Noticed: map[string]int{}, Expired: map[string]int{}, Unconfirmed: map[string]int{}}
	oldReceipts := 0
	for i := range n {
		switch {
		case i%period == 0 && (i/period)%3 == 0:
			want.Noticed[newsletter]++
		case i%period == 0 && (i/period)%3 == 1:
			want.Expired[newsletter]++
		case i%period == 0:
			want.Unconfirmed[doi]++
		case i%period == period/2:
			oldReceipts++
		}
	}
	took := Seed(b, s, n, func(i int, a optin.Address) []optin.Change {
		purpose, cc := newsletter, optin.ConsentChange{At: base.Add(-time.Hour), Source: optin.SourceForm,
			Evidence: optin.Evidence{IP: "192.0.2.10"}}
		if i%period == 0 {
			switch (i / period) % 3 {
			case 0:
				cc.At = base.Add(-retention + 10*day)
			case 1:
				cc.At = base.Add(-retention - day)
			default:
				purpose, cc.At = doi, base.Add(-8*day)
			}
		}
		grant, err := l.GrantChange(a, purpose, cc)
		if err != nil {
			panic(err) // the suite's purposes and past times: cannot fail
		}
		sent := base.Add(-2 * time.Hour)
		if i%period == period/2 {
			sent = base.Add(-receiptRetention - day)
		}
		receipt := optin.Receipt{Subject: a, Purpose: purpose, Actor: "smtp:crm", Time: sent, Relayed: true,
			Decision: optin.Decision{Allow: true, Reason: optin.ReasonConsent},
			Details:  optin.ReceiptDetails{MessageID: fmt.Sprintf("<20261201.%07d@mail.crm.example>", i), QueueID: "q" + fmt.Sprint(i)}}
		return []optin.Change{grant, receipt.Change()}
	})

	if seeded != nil {
		seeded()
	}
	ctx := context.Background()
	opts := optin.SweepOptions{Notice: 30 * day, PendingExpiry: 7 * day}
	timed := func(what string, fn func()) time.Duration {
		start := time.Now()
		fn()
		d := time.Since(start)
		b.ReportMetric(d.Seconds(), what+"-s")
		b.ReportMetric(float64(n)/d.Seconds(), what+"-subjects/s")
		return d
	}
	b.ResetTimer()
	timed("retention", func() {
		rep, err := l.Sweep(ctx, base, opts)
		if err != nil {
			b.Fatal(err)
		}
		sameSweep(b, "the retention sweep", rep, want, n)
	})
	timed("idle", func() {
		rep, err := l.Sweep(ctx, base, opts)
		if err != nil {
			b.Fatal(err)
		}
		sameSweep(b, "the second retention sweep", rep, optin.SweepReport{}, n)
	})
	timed("prune", func() {
		pruned, err := s.PruneReceipts(ctx, base.Add(-receiptRetention))
		if err != nil || pruned != oldReceipts {
			b.Fatalf("PruneReceipts: %d, %v; want %d", pruned, err, oldReceipts)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(n), "subjects")
	b.ReportMetric(took.Seconds(), "seed-s")
	b.ReportMetric(float64(2*n)/took.Seconds(), "seed-changes/s")
}

// sameSweep checks a sweep's report against the counts wanted.
func sameSweep(b *testing.B, what string, got, want optin.SweepReport, n int) {
	b.Helper()
	same := func(g, w map[string]int) bool {
		for k, v := range w {
			if g[k] != v {
				return false
			}
		}
		for k, v := range g {
			if w[k] != v {
				return false
			}
		}
		return true
	}
	// A Redis SCAN may list a subject twice; never one less.
	if got.Subjects < n || !same(got.Noticed, want.Noticed) || !same(got.Expired, want.Expired) || !same(got.Unconfirmed, want.Unconfirmed) {
		b.Fatalf("%s: %d subjects, noticed %v, expired %v, unconfirmed %v; want %d or more, %v, %v, %v", what, got.Subjects,
			got.Noticed, got.Expired, got.Unconfirmed, n, want.Noticed, want.Expired, want.Unconfirmed)
	}
}
