package webhooks_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"optinproxy/internal/mailchimptest"
	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/webhooks"
)

// BenchmarkSyncAudience pulls an audience of 5,000 subscribed members,
// with evidence, into an empty ledger: members per second, pages of 1000.
func BenchmarkSyncAudience(b *testing.B) {
	const members = 5000
	for _, backend := range []string{"file", "redis"} {
		b.Run(backend, func(b *testing.B) {
			srv := mailchimptest.New(b, mailchimptest.Options{APIKey: mcKey})
			opt := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
			for i := range members {
				srv.AddMember(mcList, mailchimptest.Member{EmailAddress: fmt.Sprintf("user%05d@example.com", i), Status: "subscribed",
					TimestampOpt: mcStamp(opt.Add(time.Duration(i) * time.Second)), IPOpt: "192.0.2.1", TimestampSignup: mcStamp(opt), IPSignup: "192.0.2.2",
					MarketingPermissions: []mailchimptest.Permission{{ID: "p1", Text: "Email", Enabled: true}}})
			}
			c, err := webhooks.NewMailchimpClient(webhooks.MailchimpClientOptions{APIKey: mcKey, BaseURL: srv.URL})
			if err != nil {
				b.Fatal(err)
			}
			var rdb *redistest.Server
			if backend == "redis" {
				rdb = redistest.Start(b)
			}
			var elapsed time.Duration
			n := 0
			for b.Loop() {
				b.StopTimer()
				var store optin.Store
				if rdb != nil {
					rdb.Restart() // empty: it keeps nothing on disk
					store = teststore.Redis(b, rdb)
				} else {
					store = teststore.File(b, filepath.Join(b.TempDir(), fmt.Sprintf("bench%d.db", n)))
				}
				l, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: mcPurposes})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				rep, err := webhooks.SyncAudience(context.Background(), webhooks.SyncOptions{Client: c, ListID: mcList, Purpose: "newsletter", Ledger: l})
				elapsed += time.Since(start)
				if err != nil || rep.Granted != members {
					b.Fatalf("%+v, %v", rep, err)
				}
				n++
			}
			b.ReportMetric(float64(n*members)/elapsed.Seconds(), "members/s")
		})
	}
}
