package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
	"optinproxy/optin/journal"
	"optinproxy/webhooks"
)

// Intervals of the background jobs.
const (
	// watchEvery is how often the store's marker is checked (so that a
	// store that lost its data is noticed while serving).
	watchEvery = 5 * time.Second
	// pruneEvery is how often receipts past their retention are pruned;
	// pruneFirst is the wait after start before the first run.
	pruneEvery = 6 * time.Hour
	pruneFirst = time.Minute
)

// jobs are the server's background loops. Stop cancels them and waits.
type jobs struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (j *jobs) stop() {
	if j.cancel != nil {
		j.cancel()
	}
	j.wg.Wait()
}

// startJobs starts the watch of the store, the drainer of the receipt
// journal, the pruning of receipts, the retention sweep and the outbox's
// dispatcher.
func startJobs(store optin.Store, jr *journal.Journal, d *webhooks.Dispatcher, retention time.Duration, sweep *retentionSweep, reg prometheus.Registerer, log *slog.Logger) *jobs {
	ctx, cancel := context.WithCancel(context.Background())
	j := &jobs{ctx: ctx, cancel: cancel}
	j.wg.Go(func() { jr.Run(ctx) })
	// Stopping waits for the deliveries under way, a few seconds at most;
	// one cut short stays pending and is sent again after a restart.
	j.wg.Go(func() { d.Run(ctx) })
	lost := prometheus.NewGauge(prometheus.GaugeOpts{Name: "optinproxy_store_data_lost",
		Help: "1 once the store lost its data while this instance used it (its marker vanished or changed); restart after restoring a backup."})
	pruned := prometheus.NewCounter(prometheus.CounterOpts{Name: "optinproxy_receipts_pruned_total",
		Help: "Receipts deleted because they were older than policy.receipt_retention."})
	reg.MustRegister(lost, pruned)
	j.wg.Go(func() { watchStore(ctx, store, lost, log.With("component", "store")) })
	j.wg.Go(func() { prune(ctx, store, retention, pruned, log.With("component", "prune")) })
	j.wg.Go(func() { sweep.run(ctx) })
	return j
}

// watchStore pings the store every watchEvery. A loss of its data is
// logged once, as an error, and shown by the gauge; /readyz shows it on
// every probe (it pings too).
func watchStore(ctx context.Context, store optin.Store, lost prometheus.Gauge, log *slog.Logger) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	told := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, watchEvery)
		err := store.Ping(pctx)
		cancel()
		if errors.Is(err, optin.ErrDataLost) && !told {
			told = true
			lost.Set(1)
			log.Error("the consent store lost its data: consents recorded before are gone, so marketing mail is blocked until they are back; restore the store from a backup and restart",
				"err", err)
		}
	}
}

// prune deletes receipts older than retention every pruneEvery, under
// the store's lease, so that of several instances one does it.
func prune(ctx context.Context, store optin.Store, retention time.Duration, pruned prometheus.Counter, log *slog.Logger) {
	every(ctx, pruneFirst, pruneEvery, func() {
		held, err := store.Lease(ctx, "prune-receipts", pruneEvery/2)
		if err != nil || !held {
			return
		}
		start := time.Now()
		n, err := store.PruneReceipts(ctx, start.Add(-retention))
		pruned.Add(float64(n))
		if err != nil {
			log.Error("pruning old receipts failed; trying again later", "pruned", n, "err", err)
			return
		}
		log.Info("pruned receipts past their retention", "pruned", n, "retention", retention.String(), "took", time.Since(start).Round(time.Millisecond).String())
	})
}

// every calls job first after first, then every then, until ctx ends.
// The wait counts from the end of a run, so runs never overlap.
func every(ctx context.Context, first, then time.Duration, job func()) {
	wait := first
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = then
		job()
	}
}
