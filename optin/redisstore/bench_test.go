package redisstore

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// benchStore opens a store on a new server that keeps nothing on disk.
func benchStore(b *testing.B) *Store {
	b.Helper()
	return openOn(b, redistest.Start(b), Options{})
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s := benchStore(b)
			storetest.BenchLookup(b, s, n)
			// The same addresses BenchLookup seeded, once more, counted.
			addrs := make([]optin.Address, n)
			for i := range addrs {
				addrs[i] = addr(b, "bench%07d@lookup.example", i)
			}
			before := s.RoundTrips()
			if _, err := s.Lookup(context.Background(), optin.LookupQuery{Purpose: "newsletter", Addresses: addrs, Message: "mid:<bench@lookup.example>"}); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(s.RoundTrips()-before), "roundtrips/lookup")
		})
	}
}

func BenchmarkImport(b *testing.B) {
	const rows = 100000
	s := benchStore(b)
	before := s.RoundTrips()
	storetest.BenchImport(b, s, rows)
	b.ReportMetric(float64(s.RoundTrips()-before)/float64(b.N)/(rows/500), "roundtrips/500rows")
}

// BenchmarkMemoryPerSubject writes N subjects (OPTIN_MEMORY_SUBJECTS,
// default 1,000,000) with one consent each through Apply, in batches of
// 500 from two writers, and reports Redis's used_memory per subject: with
// the log (event lists and feed), and for the state alone after deleting
// the log (the main dictionary then still has room for the deleted keys,
// 8 bytes a subject more than a state-only store would need), plus the
// mean MEMORY USAGE of 1000 state keys. It ignores b.N: run it with
// -benchtime=1x.
func BenchmarkMemoryPerSubject(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("OPTIN_MEMORY_SUBJECTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	s := benchStore(b)
	ctx := context.Background()
	l := ledger(b, s)
	subject := func(i int) optin.Address { return addr(b, "member%07d@example.com", i) }
	base := usedMemory(b, s.rdb)
	start := time.Now()

	const writers, batch = 2, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			changes := make([]optin.Change, 0, batch)
			for from := w * batch; from < n; from += writers * batch {
				changes = changes[:0]
				for i := from; i < min(from+batch, n); i++ {
					changes = append(changes, grant(b, l, subject(i), i))
				}
				if _, err := s.Apply(ctx, changes); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	elapsed := time.Since(start)
	withLog := usedMemory(b, s.rdb) - base

	var sampled int64
	const samples = 1000
	for i := range samples {
		sampled += s.rdb.MemoryUsage(ctx, s.keys.state(s.sid(subject(i*(n/samples)))), 0).Val()
	}

	// Drop the log: every event list, and the feed.
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, globEscape(s.keys.prefix)+"{*}:e", 5000).Result()
		if err != nil {
			b.Fatal(err)
		}
		if len(keys) > 0 {
			if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
				b.Fatal(err)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if err := s.rdb.Del(ctx, s.keys.feed()).Err(); err != nil {
		b.Fatal(err)
	}
	stateOnly := usedMemory(b, s.rdb) - base

	b.ReportMetric(float64(n), "subjects")
	b.ReportMetric(float64(stateOnly)/float64(n), "B/subject-state")
	b.ReportMetric(float64(withLog)/float64(n), "B/subject-with-log")
	b.ReportMetric(float64(sampled)/samples, "B/state-key-MEMORY-USAGE")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "subjects/s")
}

// usedMemory is INFO memory's used_memory.
func usedMemory(b *testing.B, rdb redis.UniversalClient) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no used_memory in INFO memory")
	return 0
}
