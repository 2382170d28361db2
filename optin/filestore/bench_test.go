package filestore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { storetest.BenchLookup(b, open(b), n) })
	}
}

// BenchmarkImport100k imports 100,000 rows per iteration; run it alone:
// go test -run x -bench Import -benchtime 1x ./optin/filestore/
func BenchmarkImport100k(b *testing.B) {
	storetest.BenchImport(b, open(b), 100_000)
}

// BenchmarkFileSize stores 100,000 subjects with one consent each and
// reports the file's size per subject, and the part of it in use.
func BenchmarkFileSize(b *testing.B) {
	const subjects = 100_000
	for b.Loop() {
		b.StopTimer()
		s := open(b)
		b.StartTimer()
		fillSubjects(b, s, subjects)
		b.StopTimer()
		fi, err := os.Stat(s.db.Path())
		if err != nil {
			b.Fatal(err)
		}
		var used int64
		s.db.View(func(tx *bolt.Tx) error {
			used = tx.Size() - int64(s.db.Stats().FreePageN)*int64(s.db.Info().PageSize)
			return nil
		})
		b.ReportMetric(float64(fi.Size())/subjects, "file-B/subject")
		b.ReportMetric(float64(used)/subjects, "used-B/subject")
		b.StartTimer()
	}
}

// fillSubjects grants the newsletter to n new subjects in batches of 1000.
func fillSubjects(b testing.TB, s *Store, n int) {
	l, err := optin.NewLedger(optin.LedgerOptions{Store: s, PolicyVersion: "2026-01", Purposes: optin.Purposes{
		"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Retention: 730 * 24 * time.Hour},
	}})
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < n; start += 1000 {
		batch := make([]optin.Change, 0, 1000)
		for i := start; i < min(start+1000, n); i++ {
			a, _ := optin.ParseAddress(fmt.Sprintf("subject%07d@size.example", i))
			ch, err := l.GrantChange(a, "newsletter", optin.ConsentChange{Source: optin.SourceForm,
				Evidence: optin.Evidence{IP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"}})
			if err != nil {
				b.Fatal(err)
			}
			batch = append(batch, ch)
		}
		if _, err := l.Apply(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSweeps times one pass of each sweeper over N subjects
// (OPTIN_SWEEP_SUBJECTS, default 100,000), 1 % of them due (see
// storetest.BenchSweeps), and reports the file's size once they are
// written. It ignores b.N: run it with -benchtime=1x.
func BenchmarkSweeps(b *testing.B) {
	n := sweepSubjects(b)
	s := open(b)
	var size int64
	storetest.BenchSweeps(b, s, n, 0.01, func() { size = fileSize(b, s) })
	b.ReportMetric(float64(size)/(1<<20), "file-MiB")
}

// BenchmarkErasures times the erasure sweeper's pass over N subjects
// (OPTIN_SWEEP_SUBJECTS, default 100,000), 1 % of them due and 1 %
// scheduled later (see storetest.BenchErasures), and reports the file's
// size before and after. It ignores b.N: run it with -benchtime=1x.
func BenchmarkErasures(b *testing.B) {
	n := sweepSubjects(b)
	s := open(b)
	var before, after int64
	storetest.BenchErasures(b, s, n, 0.01, storetest.ErasureHooks{
		Seeded: func([]optin.Address) { before = fileSize(b, s) },
		Swept:  func([]optin.Address) { after = fileSize(b, s) },
	})
	b.ReportMetric(float64(before)/(1<<20), "file-MiB")
	b.ReportMetric(float64(after)/(1<<20), "file-MiB-after")
}

// sweepSubjects is the number of subjects the sweeper benchmarks seed:
// OPTIN_SWEEP_SUBJECTS, default 100,000.
func sweepSubjects(b *testing.B) int {
	b.Helper()
	v := os.Getenv("OPTIN_SWEEP_SUBJECTS")
	if v == "" {
		return 100_000
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// fileSize is the size of s's database file.
func fileSize(b *testing.B, s *Store) int64 {
	b.Helper()
	fi, err := os.Stat(s.db.Path())
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
