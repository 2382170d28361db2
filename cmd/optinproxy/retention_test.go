package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/config"
	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

const testDay = 24 * time.Hour

var retentionPurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Retention: 730 * testDay},
	"doi":        {Name: "doi", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, DoubleOptIn: true},
}

// retentionInstance is one proxy's retention job on a store, with its
// own metrics and log.
type retentionInstance struct {
	job *retentionSweep
	reg *prometheus.Registry
	log *testtools.LogBuffer
}

func newRetentionInstance(t *testing.T, store optin.Store, now func() time.Time) *retentionInstance {
	t.Helper()
	l, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: retentionPurposes, PolicyVersion: "2026-01", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	in := &retentionInstance{reg: prometheus.NewRegistry(), log: &testtools.LogBuffer{}}
	in.job = newRetentionSweep(l, optin.SweepOptions{Notice: 30 * testDay, PendingExpiry: 7 * testDay}, now, in.reg,
		slog.New(slog.NewJSONHandler(in.log, nil)))
	return in
}

// counts reads the job's counters as "name{label values}" → value.
func (in *retentionInstance) counts(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := in.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}

// seedDue writes, as of now, two consents past their expiry, two within
// the notice, a double opt-in pending for eight days and a fresh grant,
// with addresses made from tag.
func seedDue(t *testing.T, l *optin.Ledger, now time.Time, tag string) {
	t.Helper()
	for i, back := range []time.Duration{731 * testDay, 740 * testDay, 720 * testDay, 710 * testDay, time.Hour} {
		a, _ := optin.ParseAddress(fmt.Sprintf("%s%d@example.com", tag, i))
		if _, err := l.Grant(context.Background(), a, "newsletter", optin.ConsentChange{At: now.Add(-back)}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := optin.ParseAddress(tag + "-pending@example.com")
	if r, err := l.Grant(context.Background(), a, "doi", optin.ConsentChange{Source: optin.SourceForm, At: now.Add(-8 * testDay)}); err != nil || r.Consent.Status != optin.StatusPending {
		t.Fatalf("pending grant: %+v %v", r.Consent, err)
	}
}

// wantSweptCounts are the counters after sweeping one seedDue.
var wantSweptCounts = map[string]float64{
	"optinproxy_consents_expiring_total{newsletter}":          2,
	"optinproxy_consents_expired_total{newsletter,retention}": 2,
	"optinproxy_consents_expired_total{doi,unconfirmed}":      1,
}

func sameCounts(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: counters %v, want %v", what, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: counters %v, want %v", what, got, want)
			return
		}
	}
}

// TestRetentionLeaseTwoInstances: two proxies on one Redis run the job at
// the same moment; the lease lets exactly one sweep, which counts and
// logs what it recorded (without an address); the holder keeps the job
// at its next run, the other still does not sweep.
func TestRetentionLeaseTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	clock := testtools.NewClock(time.Now().UTC())
	one := newRetentionInstance(t, teststore.Redis(t, srv), clock.Now)
	two := newRetentionInstance(t, teststore.Redis(t, srv), clock.Now)
	seedDue(t, one.job.ledger, clock.Now(), "lease")
	ctx := context.Background()

	swept := make([]bool, 2)
	var wg sync.WaitGroup
	for i, in := range []*retentionInstance{one, two} {
		wg.Go(func() { swept[i] = in.job.sweep(ctx) })
	}
	wg.Wait()
	if swept[0] == swept[1] {
		t.Fatalf("two instances at once: swept %v, want exactly one", swept)
	}
	holder, other := one, two
	if swept[1] {
		holder, other = two, one
	}
	sameCounts(t, "the sweeping instance", holder.counts(t), wantSweptCounts)
	sameCounts(t, "the other instance", other.counts(t), map[string]float64{})
	logged := holder.log.String()
	for _, want := range []string{`"msg":"retention sweep"`, `"subjects":6`, `"noticed":2`, `"expired":2`, `"unconfirmed":1`, `"took":`} {
		if !strings.Contains(logged, want) {
			t.Errorf("the sweep's log lacks %s:\n%s", want, logged)
		}
	}
	if strings.Contains(logged+other.log.String(), "example.com") {
		t.Errorf("an address in the log:\n%s", logged)
	}

	// An hour on: the holder renews and sweeps again; the other, asking
	// first, is still refused. Nothing is due twice.
	clock.Advance(time.Hour)
	seedDue(t, other.job.ledger, clock.Now(), "next")
	if other.job.sweep(ctx) {
		t.Error("the other instance swept while the holder's lease runs")
	}
	if !holder.job.sweep(ctx) {
		t.Fatal("the holder did not renew its lease")
	}
	double := map[string]float64{}
	for k, v := range wantSweptCounts {
		double[k] = 2 * v
	}
	sameCounts(t, "the holder after two runs", holder.counts(t), double)
}

// TestRetentionSchedule: the job's first sweep comes a minute after it
// starts, then one every hour, and it stops with its context (synctest's
// clock; the store is the embedded one, in the bubble).
func TestRetentionSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db"))
		in := newRetentionInstance(t, store, time.Now)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			in.job.run(ctx)
			close(done)
		}()
		seedDue(t, in.job.ledger, time.Now(), "first")
		expired := func() float64 {
			return in.counts(t)["optinproxy_consents_expired_total{newsletter,retention}"]
		}

		time.Sleep(time.Minute - time.Second) // the first run comes a minute after start
		synctest.Wait()
		if n := expired(); n != 0 {
			t.Fatalf("%v expired before the first run", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := expired(); n != 2 {
			t.Fatalf("after the first run: %v expired, want 2", n)
		}
		seedDue(t, in.job.ledger, time.Now(), "second")
		time.Sleep(time.Hour - 2*time.Second) // then hourly
		synctest.Wait()
		if n := expired(); n != 2 {
			t.Fatalf("before the second run: %v expired, want still 2", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := expired(); n != 4 {
			t.Fatalf("after the second run: %v expired, want 4", n)
		}
		cancel()
		<-done
	})
}

// TestRetentionOf: the job sweeps with the configured notice and pending
// expiry.
func TestRetentionOf(t *testing.T) {
	cfg := config.Default()
	cfg.Policy.RetentionNotice = config.Duration(10 * testDay)
	cfg.Policy.PendingExpiry = config.Duration(2 * testDay)
	store := teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db"))
	l, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: retentionPurposes})
	if err != nil {
		t.Fatal(err)
	}
	job := retentionOf(cfg, l, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if job.opts.Notice != 10*testDay || job.opts.PendingExpiry != 2*testDay || job.ledger != l {
		t.Errorf("sweep options %+v", job.opts)
	}
}
