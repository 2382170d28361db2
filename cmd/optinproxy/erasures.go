package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
)

// sweepEvery is how often scheduled erasures that are due are carried
// out; sweepLease is the lease of that job: renewed by its holder at
// every run, taken over by another instance when the holder is gone.
const (
	sweepEvery = time.Minute
	sweepLease = 2 * sweepEvery
)

// erasureJob is the sweeper of scheduled erasures.
type erasureJob interface {
	EraseDue(ctx context.Context, notify bool) (optin.ErasureSweep, error)
}

// startErasures runs the sweeper of scheduled erasures beside the other
// jobs: every sweepEvery, under the store's "erasure" lease so that of
// several instances on one Redis one does it. notify keeps the erased
// addresses for the outbound targets (optin.ErasureRequest.Notify).
func (j *jobs) startErasures(store optin.Store, ledger erasureJob, notify bool, reg prometheus.Registerer, log *slog.Logger) {
	swept := prometheus.NewCounter(prometheus.CounterOpts{Name: "optinproxy_erasures_swept_total",
		Help: "Scheduled erasures carried out by this instance's sweeper once due."})
	reg.MustRegister(swept)
	log = log.With("component", "erasure")
	j.wg.Go(func() { sweepErasures(j.ctx, store, ledger, notify, swept, log) })
}

// sweepErasures carries out the due erasures every sweepEvery while this
// instance holds the lease. It logs counts, never addresses.
func sweepErasures(ctx context.Context, store optin.Store, ledger erasureJob, notify bool, swept prometheus.Counter, log *slog.Logger) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, err := store.Lease(ctx, "erasure", sweepLease)
		if err != nil || !held {
			continue
		}
		sw, err := ledger.EraseDue(ctx, notify)
		swept.Add(float64(sw.Erased))
		if err != nil {
			log.Error("carrying out scheduled erasures failed; trying again in a minute", "erased", sw.Erased, "err", err)
			continue
		}
		if sw.Erased+sw.Skipped > 0 {
			log.Info("carried out scheduled erasures", "erased", sw.Erased, "skipped", sw.Skipped)
		}
	}
}

// portalEraser is the portal's Eraser: the ledger's erasure, carried out
// now, with the notice when outbound targets are configured.
type portalEraser struct {
	ledger *optin.Ledger
	notify bool
}

func (p portalEraser) Erase(ctx context.Context, a optin.Address, actor string) error {
	_, err := p.ledger.Erase(ctx, a, optin.ErasureRequest{Actor: actor, Notify: p.notify})
	return err
}
