package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/config"
	"optinproxy/optin"
	"optinproxy/optin/journal"
)

// drainAtStart bounds how long a start waits for a journal left from
// before to reach the store; what is left then drains in the background,
// and mail waits (451) until it has.
const drainAtStart = 30 * time.Second

// openJournal opens the receipt journal in store.path (receipts
// the store could not take wait there) and drains what a previous run
// left, before the relay takes mail. Its depth and counts are metrics.
func openJournal(ctx context.Context, cfg *config.Config, store optin.Store, keys *optin.Keys, reg prometheus.Registerer, log *slog.Logger) (*journal.Journal, error) {
	j, err := journal.Open(journal.Options{
		Path:   filepath.Join(cfg.Store.Path, "receipts.journal"),
		Key:    keys.Get().Derive("journal"),
		Store:  store,
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("store.path: receipt journal: %w", err)
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "optinproxy_journal_depth",
			Help: "Receipts and delivered marks waiting in the local journal for the store to be back."},
			func() float64 { return float64(j.Depth()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "optinproxy_journal_written_total",
			Help: "Receipts and delivered marks the store could not take, written to the local journal instead."},
			func() float64 { return float64(j.Journaled()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "optinproxy_journal_set_aside_total",
			Help: "Journal entries that could not be read or written and were moved to receipts.journal.damaged; any is worth a look."},
			func() float64 { return float64(j.SetAside()) }),
	)
	if n := j.Depth(); n > 0 {
		log.Warn("the receipt journal holds entries from before; writing them to the store first", "changes", n)
		dctx, cancel := context.WithTimeout(ctx, drainAtStart)
		err := j.Drain(dctx)
		cancel()
		if err != nil {
			log.Error("the receipt journal could not be written to the store yet; mail waits (451) until it has", "changes", j.Depth(), "err", err)
		}
	}
	return j, nil
}
