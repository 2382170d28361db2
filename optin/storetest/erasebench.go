package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"optinproxy/optin"
)

const (
	// idlePasses is how many passes with nothing due BenchErasures
	// times, for a mean of a pass too short to time alone.
	idlePasses = 1000
	// erasureSamples is how many of the due subjects BenchErasures gives
	// its caller to look at.
	erasureSamples = 1000
)

// ErasureHooks are a store's own figures that BenchErasures asks for,
// each called once (nil: none); the caller reports them after
// BenchErasures returns (b.ResetTimer would drop them).
type ErasureHooks struct {
	// Seeded is called once the subjects are written, before the pass
	// (the store's memory, its file's size), with up to erasureSamples of
	// the subjects due, to weigh what each takes.
	Seeded func(due []optin.Address)
	// RoundTrips returns the store's network round trips so far
	// (Harness.RoundTrips), to count those of each pass.
	RoundTrips func() int64
	// Swept is called after the passes with the same subjects, erased
	// now, to weigh what each still takes.
	Swept func(erased []optin.Address)
}

// BenchErasures seeds n subjects into s (Seed) and times the erasure
// sweeper (Ledger.EraseDue) as the server runs it every minute:
//
//   - every subject was granted the newsletter sixty days ago and was
//     mailed two hours ago (a consent and a receipt, as BenchSweeps);
//   - one in every 1/due subjects (i%period == 0) asked thirty days ago
//     to be erased an hour ago: due;
//   - as many others (i%period == period/2) asked thirty days ago to be
//     erased in thirty days: scheduled, not due.
//
// It reports the seconds of the pass and the erasures it carried out per
// second (erase-), the mean time of a pass with nothing due, the
// minutely check (idle-us, over idlePasses), the round trips of each
// when the store counts them, and checks what the passes did: as many
// erased as were due, none skipped, nothing in the later passes; the
// first due subject erased, the first scheduled later not, and still
// scheduled. Run it with -benchtime 1x: it makes one pass whatever b.N.
func BenchErasures(b *testing.B, s optin.Store, n int, due float64, hooks ErasureHooks) {
	period := int(1 / due)
	if period < 2 || n < period {
		b.Fatalf("BenchErasures: %d subjects, one in %d due: too few", n, period)
	}
	base := time.Now().UTC()
	granted := SeedLedger(b, s, func() time.Time { return base.Add(-60 * day) })
	asked := SeedLedger(b, s, func() time.Time { return base.Add(-30 * day) })
	dueCount, later := 0, 0
	for i := range n {
		switch i % period {
		case 0:
			dueCount++
		case period / 2:
			later++
		}
	}
	took := Seed(b, s, n, func(i int, a optin.Address) []optin.Change {
		grant, err := granted.GrantChange(a, newsletter, optin.ConsentChange{Source: optin.SourceForm,
			Evidence: optin.Evidence{IP: "192.0.2.10"}})
		if err != nil {
			panic(err) // the suite's purpose and its clock's time: cannot fail
		}
		receipt := optin.Receipt{Subject: a, Purpose: newsletter, Actor: "smtp:crm", Time: base.Add(-2 * time.Hour), Relayed: true,
			Decision: optin.Decision{Allow: true, Reason: optin.ReasonConsent},
			Details:  optin.ReceiptDetails{MessageID: fmt.Sprintf("<20261201.%07d@mail.crm.example>", i), QueueID: "q" + fmt.Sprint(i)}}
		changes := []optin.Change{grant, receipt.Change()}
		at := time.Time{}
		switch i % period {
		case 0:
			at = base.Add(-time.Hour)
		case period / 2:
			at = base.Add(30 * day)
		}
		if !at.IsZero() {
			erase, err := asked.EraseChange(a, optin.ErasureRequest{At: at, Actor: "subject"})
			if err != nil {
				panic(err) // an address SeedAddress made: cannot fail
			}
			changes = append(changes, erase)
		}
		return changes
	})

	var sample []optin.Address
	for i := 0; i < n && len(sample) < erasureSamples; i += period {
		sample = append(sample, SeedAddress(i))
	}
	if hooks.Seeded != nil {
		hooks.Seeded(sample)
	}
	sweeper := SeedLedger(b, s, func() time.Time { return base })
	ctx := context.Background()
	trips := func() int64 {
		if hooks.RoundTrips == nil {
			return 0
		}
		return hooks.RoundTrips()
	}
	b.ResetTimer()
	trips0, start := trips(), time.Now()
	sweep, err := sweeper.EraseDue(ctx, false)
	pass, passTrips := time.Since(start), trips()-trips0
	if err != nil || sweep != (optin.ErasureSweep{Erased: dueCount}) {
		b.Fatalf("EraseDue: %+v, %v; want %d erased, none skipped", sweep, err, dueCount)
	}
	trips0, start = trips(), time.Now()
	for range idlePasses {
		if sweep, err := sweeper.EraseDue(ctx, false); err != nil || sweep != (optin.ErasureSweep{}) {
			b.Fatalf("EraseDue with nothing due: %+v, %v; want nothing", sweep, err)
		}
	}
	idle, idleTrips := time.Since(start)/idlePasses, trips()-trips0
	b.StopTimer()

	wantErasedOrNot(b, s, SeedAddress(0), true, time.Time{})
	wantErasedOrNot(b, s, SeedAddress(period/2), false, base.Add(30*day))
	if hooks.Swept != nil {
		hooks.Swept(sample)
	}

	b.ReportMetric(float64(n), "subjects")
	b.ReportMetric(float64(dueCount), "due")
	b.ReportMetric(float64(later), "scheduled-later")
	b.ReportMetric(pass.Seconds(), "erase-s")
	b.ReportMetric(float64(dueCount)/pass.Seconds(), "erase-erasures/s")
	b.ReportMetric(float64(idle.Nanoseconds())/1e3, "idle-us")
	if hooks.RoundTrips != nil {
		b.ReportMetric(float64(passTrips), "erase-roundtrips")
		b.ReportMetric(float64(idleTrips)/idlePasses, "idle-roundtrips/pass")
	}
	b.ReportMetric(took.Seconds(), "seed-s")
}

// wantErasedOrNot checks one subject after the sweep: erased or not, and the
// erasure still scheduled at at (zero: none).
func wantErasedOrNot(b *testing.B, s optin.Store, a optin.Address, erased bool, at time.Time) {
	b.Helper()
	v, err := s.Subject(context.Background(), a, 10)
	if err != nil {
		b.Fatalf("Subject(%s) after the sweep: %v", a, err)
	}
	if v.Erased != erased || !v.ErasureAt.Equal(at) {
		b.Fatalf("%s after the sweep: erased %v, erasure at %v; want %v, %v", a, v.Erased, v.ErasureAt, erased, at)
	}
}
