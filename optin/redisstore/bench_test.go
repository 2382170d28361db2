package redisstore

import (
	"context"
	"encoding/binary"
	"fmt"
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

// BenchmarkSweeps times one pass of each sweeper (the retention sweep,
// again with nothing due, the receipt pruning) over N subjects
// (OPTIN_SWEEP_SUBJECTS, default 1,000,000), one consent and one receipt
// each, 1 % of them due, on a private redis-server; and reports Redis's
// used_memory once they are written. It ignores b.N: run it with
// -benchtime=1x.
func BenchmarkSweeps(b *testing.B) {
	n := envInt(b, "OPTIN_SWEEP_SUBJECTS", 1_000_000)
	s := benchStore(b)
	base := usedMemory(b, s.rdb)
	var used int64
	storetest.BenchSweeps(b, s, n, 0.01, func() { used = usedMemory(b, s.rdb) - base })
	b.ReportMetric(float64(used)/(1<<20), "redis-MiB")
	b.ReportMetric(float64(used)/float64(n), "redis-B/subject")
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

// BenchmarkMemoryPerReceipt measures what receipts cost in Redis, as the
// relay writes them: N subjects (OPTIN_MEMORY_SUBJECTS, default 20,000)
// with one consent each get R messages each (OPTIN_MEMORY_RECEIPTS,
// default 20), every message looked up and its receipts written in
// batches of 500 (one lookup round trip, one write round trip each).
// Reported: used_memory per receipt (the list entry and its reference in
// the feed), the round trips per batch, and, from one more round whose
// receipts carry delivery marks, the memory of a subject's marks. Realistic
// fields: a 50-character Message-ID, a 16-character queue id, the
// consent event's id. It ignores b.N: run it with -benchtime=1x.
func BenchmarkMemoryPerReceipt(b *testing.B) {
	n, rounds := envInt(b, "OPTIN_MEMORY_SUBJECTS", 20_000), envInt(b, "OPTIN_MEMORY_RECEIPTS", 20)
	s := benchStore(b)
	ctx := context.Background()
	l := ledger(b, s)
	const batch = 500
	addrs := make([]optin.Address, n)
	consentEvents := make([]string, n)
	for from := 0; from < n; from += batch {
		var changes []optin.Change
		for i := from; i < min(from+batch, n); i++ {
			addrs[i] = addr(b, "member%07d@example.com", i)
			changes = append(changes, grant(b, l, addrs[i], i))
		}
		rs, err := s.Apply(ctx, changes)
		if err != nil {
			b.Fatal(err)
		}
		for j, r := range rs {
			consentEvents[from+j] = r.Event.ID
		}
	}
	write := func(round int, marks bool) (trips int64) {
		msgID := fmt.Sprintf("<20261201.%08x.%07d@mail.crm.bakkerij-ansems.nl>", round, 1234567)
		for from := 0; from < n; from += batch {
			before := s.RoundTrips()
			q := optin.LookupQuery{Purpose: "newsletter", Addresses: addrs[from:min(from+batch, n)], Message: "mid:" + msgID}
			if _, err := s.Lookup(ctx, q); err != nil {
				b.Fatal(err)
			}
			changes := make([]optin.Change, 0, batch)
			for i := from; i < min(from+batch, n); i++ {
				r := optin.Receipt{Subject: addrs[i], Purpose: "newsletter", Actor: "smtp:crm", Time: time.Now(), Relayed: true,
					Decision: optin.Decision{Allow: true, Reason: optin.ReasonConsent},
					Details:  optin.ReceiptDetails{MessageID: msgID, QueueID: queueID(i), ConsentEvent: consentEvents[i]}}
				if marks {
					r.Delivered = &optin.Delivery{Message: "mid:" + msgID, Until: time.Now().Add(24 * time.Hour)}
				}
				changes = append(changes, r.Change())
			}
			if _, err := s.Apply(ctx, changes); err != nil {
				b.Fatal(err)
			}
			trips += s.RoundTrips() - before
		}
		return trips
	}
	base := usedMemory(b, s.rdb)
	var trips int64
	half := rounds / 2
	var mid int64
	for r := range rounds {
		if r == half {
			mid = usedMemory(b, s.rdb)
		}
		trips += write(r, false)
	}
	receipts := usedMemory(b, s.rdb)
	var lists int64
	const samples = 200
	for i := range samples {
		lists += s.rdb.MemoryUsage(ctx, s.keys.receipts(s.sid(addrs[i*(n/samples)])), 0).Val()
	}
	feed := s.rdb.MemoryUsage(ctx, s.keys.feed(), 0).Val()
	b.ReportMetric(float64(lists)/samples/float64(rounds), "B/receipt-in-its-list")
	b.ReportMetric(float64(feed)/float64(n*rounds), "B/receipt-in-the-feed")
	memOf := func(key func(sid string) string) (sum int64) {
		for i := range samples {
			sum += s.rdb.MemoryUsage(ctx, key(s.sid(addrs[i*(n/samples)])), 0).Val()
		}
		return sum
	}
	states := memOf(s.keys.state)
	write(rounds, true)
	marks := memOf(s.keys.marks)
	batches := float64(rounds * ((n + batch - 1) / batch))
	perReceipt := float64(receipts-mid) / float64(n*(rounds-half))
	b.ReportMetric(float64(n*rounds), "receipts")
	// Overall: with each subject's list itself; marginal: a receipt
	// more to a subject that has some.
	b.ReportMetric(float64(receipts-base)/float64(n*rounds), "B/receipt-overall")
	b.ReportMetric(perReceipt, "B/receipt")
	// A subject's live marks are a sorted set of their own, which Redis
	// drops at the last one's until: here, one mark each.
	b.ReportMetric(float64(marks)/samples, "B/marks-key-with-one-mark")
	b.ReportMetric(float64(states)/samples, "B/state")
	b.ReportMetric(float64(trips)/batches, "roundtrips/batch")
}

// queueID is a queue id of the relay's form (10 bytes, lowercase base32).
func queueID(i int) string {
	var raw [10]byte
	binary.BigEndian.PutUint64(raw[2:], uint64(i)*0x9e3779b97f4a7c15)
	return strings.ToLower(b32.EncodeToString(raw[:]))
}

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return def
}
