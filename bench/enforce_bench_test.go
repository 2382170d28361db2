package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/optin/redisstore"
	"optinproxy/smtpproxy"
)

// BenchmarkEnforcement compares, in one run, the relay without decisions
// (pass-through, as in the relay-core benchmark) with the relay deciding
// every recipient from the embedded store and from Redis, for messages
// of 1 and 10 recipients who all consented to the newsletter. Each
// message costs a lookup and a receipt per recipient. Besides msgs/s it
// reports the store's round trips per message (Redis) and the writes per
// message (Redis and file).
//
//	go test -run '^$' -bench Enforcement -benchtime 4000x -count 5 ./bench/
func BenchmarkEnforcement(b *testing.B) {
	for _, n := range []int{1, 10} {
		setRecipients(b, n)
		b.Run(fmt.Sprintf("rcpts=%d/pass", n), func(b *testing.B) {
			s := startSink(b)
			p := startProxy(b, "smtp://"+s.addr)
			run(b, p.addr, true)
			p.wantRelayed(b, s, 1)
		})
		b.Run(fmt.Sprintf("rcpts=%d/file", n), func(b *testing.B) {
			counted := &countingLedger{Store: teststore.File(b, filepath.Join(b.TempDir(), "optinproxy.db"))}
			enforce(b, counted, n)
			b.ReportMetric(float64(counted.applies.Load())/float64(b.N), "writes/msg")
		})
		b.Run(fmt.Sprintf("rcpts=%d/redis", n), func(b *testing.B) {
			st := teststore.Redis(b, redistest.Start(b))
			counted := &countingLedger{Store: st}
			enforce(b, counted, n)
			b.ReportMetric(float64(counted.lookups.Load())/float64(b.N), "lookups/msg")
			b.ReportMetric(float64(counted.applies.Load())/float64(b.N), "writes/msg")
			b.ReportMetric(float64(st.(*redisstore.Store).RoundTrips()-counted.base)/float64(b.N), "roundtrips/msg")
		})
	}
	setRecipients(b, 1)
}

// setRecipients makes every message go to n recipients of its own, so
// that receipts land on many subjects, as a newsletter's do.
func setRecipients(b *testing.B, n int) {
	recipients = n
	rcptFor = func(seq int64, i int) string { return fmt.Sprintf("r%d@sink.test", (int(seq)*n+i)%grantedSubjects) }
	if n == 1 {
		rcptFor = func(seq int64, i int) string { return fmt.Sprintf("r%d@sink.test", int(seq)%grantedSubjects) }
	}
}

// grantedSubjects have consented before the benchmark starts.
const grantedSubjects = 5000

// enforce grants the newsletter to every recipient the benchmark uses,
// then relays b.N messages through a proxy deciding from store; edit,
// when given, turns more of the relay on.
func enforce(b *testing.B, store *countingLedger, n int, edit ...func(o *smtpproxy.Options)) {
	b.Helper()
	purposes := optin.Purposes{"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, RoleAddresses: optin.RoleAllow}}
	l, err := optin.NewLedger(optin.LedgerOptions{Store: store.Store, Purposes: purposes, PolicyVersion: "2026-01"})
	if err != nil {
		b.Fatal(err)
	}
	var changes []optin.Change
	for i := range grantedSubjects {
		a, _ := optin.ParseAddress(fmt.Sprintf("r%d@sink.test", i))
		ch, err := l.GrantChange(a, "newsletter", optin.ConsentChange{Source: "import", At: time.Now().Add(-time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		changes = append(changes, ch)
	}
	if _, err := store.Store.Apply(context.Background(), changes); err != nil {
		b.Fatal(err)
	}
	s := startSink(b)
	copies := 1 // the sink gets, per message
	p := startProxyWith(b, "smtp://"+s.addr, func(o *smtpproxy.Options) {
		o.Store = store
		o.Purposes = purposes
		o.DefaultPurpose = "newsletter"
		for _, e := range edit {
			e(o)
		}
		if o.Personalize != nil && o.Purposes["newsletter"].Unsubscribe {
			copies = n
		}
	})
	store.lookups.Store(0)
	store.applies.Store(0)
	if rt, ok := store.Store.(interface{ RoundTrips() int64 }); ok {
		store.base = rt.RoundTrips()
	}
	run(b, p.addr, true)
	p.wantRelayed(b, s, copies)
}

// countingLedger counts the proxy's lookups and writes.
type countingLedger struct {
	optin.Store
	lookups, applies atomic.Int64
	// base is the store's round trips before the run.
	base int64
}

func (c *countingLedger) Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error) {
	c.lookups.Add(1)
	return c.Store.Lookup(ctx, q)
}

func (c *countingLedger) Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error) {
	c.applies.Add(1)
	return c.Store.Apply(ctx, changes)
}

// wantRelayed fails unless the sink got every message, in copies
// messages each, and the proxy counted each as relayed.
func (p *proxy) wantRelayed(b *testing.B, s *sink, copies int) {
	b.Helper()
	if got, relayed := s.msgs.Load(), p.relayed(b); got != int64(copies*b.N) || relayed != int64(b.N) {
		b.Fatalf("sink got %d messages and the proxy counted %d relayed, want %d and %d", got, relayed, copies*b.N, b.N)
	}
}
