package teststore

import (
	"path/filepath"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// BenchmarkCopy copies a ledger of 100,000 subjects, each with a grant
// and two receipts (300,000 events), from the embedded store into Redis
// and from there into another embedded store, as optinproxy migrate does
// (optin.Copy, then Verify on the target), and reports the seconds of
// each way: file-s and redis-s the copies, verify-file-s and
// verify-redis-s the checks after them. Seeding is not counted.
//
//	go test -run '^$' -bench Copy -benchtime 1x -timeout 30m ./internal/teststore/
func BenchmarkCopy(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		b.StopTimer()
		src := openFile(b, filepath.Join(b.TempDir(), "optinproxy.db"), time.Now, Keys)
		l := storetest.SeedLedger(b, src, time.Now)
		storetest.Seed(b, src, n, storetest.GrantedWithReceipts(l, 2))
		mid := openRedis(b, redistest.Start(b), time.Now, Keys)
		dst := openFile(b, filepath.Join(b.TempDir(), "optinproxy.db"), time.Now, Keys)
		b.StartTimer()
		copyTimed(b, src, mid, "redis-s", "verify-redis-s", n)
		copyTimed(b, mid, dst, "file-s", "verify-file-s", n)
	}
}

// copyTimed copies from into to, verifies to, and reports both times.
func copyTimed(b *testing.B, from, to optin.Store, copyMetric, verifyMetric string, n int) {
	start := time.Now()
	st, err := optin.Copy(b.Context(), from.(optin.Dumper), to.(optin.Restorer), "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	copied := time.Since(start)
	start = time.Now()
	rep, err := to.Verify(b.Context())
	if err != nil || len(rep.Broken) != 0 || rep.Subjects != n || st.Subjects != n || rep.Events != 3*n {
		b.Fatalf("after the copy: %+v, Verify %+v, %v", st, rep, err)
	}
	b.ReportMetric(copied.Seconds(), copyMetric)
	b.ReportMetric(time.Since(start).Seconds(), verifyMetric)
}
