package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/config"
	"optinproxy/optin"
)

// The retention sweep runs hourly, the first time a minute after start.
// Its lease outlasts the interval: the instance that holds it renews it
// at each run and keeps the job while it lives, so of several instances
// on one store one sweeps; another takes over at most retentionLease
// after the holder stopped. Two sweeps at once (a pass longer than the
// lease) would still record each notice and expiry once.
const (
	retentionEvery = time.Hour
	retentionFirst = time.Minute
	retentionLease = retentionEvery + retentionEvery/2
	retentionJob   = "retention"
)

// retentionSweep is the background job of the retention sweep (optin.Ledger
// Sweep) with its metrics.
type retentionSweep struct {
	ledger   *optin.Ledger
	opts     optin.SweepOptions
	now      func() time.Time
	expired  *prometheus.CounterVec
	expiring *prometheus.CounterVec
	log      *slog.Logger
}

// newRetentionSweep registers the job's metrics on reg. now is the clock the
// sweep judges expiries by.
func newRetentionSweep(ledger *optin.Ledger, opts optin.SweepOptions, now func() time.Time, reg prometheus.Registerer, log *slog.Logger) *retentionSweep {
	r := &retentionSweep{ledger: ledger, opts: opts, now: now, log: log,
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "optinproxy_consents_expired_total",
			Help: "Consents the retention sweep marked expired, by purpose and why: retention (past expires_at) or unconfirmed (pending for longer than policy.pending_expiry)."},
			[]string{"purpose", "why"}),
		expiring: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "optinproxy_consents_expiring_total",
			Help: "consent.expiring events the retention sweep recorded, policy.retention_notice before a consent's expiry, by purpose."},
			[]string{"purpose"}),
	}
	reg.MustRegister(r.expired, r.expiring)
	return r
}

// retentionOf is the sweep cfg's policy asks for.
func retentionOf(cfg *config.Config, ledger *optin.Ledger, reg prometheus.Registerer, log *slog.Logger) *retentionSweep {
	opts := optin.SweepOptions{Notice: time.Duration(cfg.Policy.RetentionNotice), PendingExpiry: time.Duration(cfg.Policy.PendingExpiry)}
	return newRetentionSweep(ledger, opts, time.Now, reg, log.With("component", "retention"))
}

// run sweeps every retentionEvery until ctx ends.
func (r *retentionSweep) run(ctx context.Context) {
	every(ctx, retentionFirst, retentionEvery, func() { r.sweep(ctx) })
}

// sweep makes one pass if this instance holds (or takes) the lease, and
// reports whether it did. What it recorded is counted also when the pass
// fails halfway; the next pass goes on from the stored state.
func (r *retentionSweep) sweep(ctx context.Context) bool {
	held, err := r.ledger.Store().Lease(ctx, retentionJob, retentionLease)
	if err != nil {
		r.log.Warn("retention sweep skipped: the store did not answer for its lease; trying again next hour", "err", err)
		return false
	}
	if !held {
		return false
	}
	began := time.Now() // the time taken is measured, whatever clock judges
	rep, err := r.ledger.Sweep(ctx, r.now(), r.opts)
	for p, n := range rep.Noticed {
		r.expiring.WithLabelValues(p).Add(float64(n))
	}
	for why, by := range map[string]map[string]int{optin.ExpiredRetention: rep.Expired, optin.ExpiredUnconfirmed: rep.Unconfirmed} {
		for p, n := range by {
			r.expired.WithLabelValues(p, why).Add(float64(n))
		}
	}
	// Purpose names and counts only: never an address.
	attrs := []any{"subjects", rep.Subjects, "noticed", total(rep.Noticed), "expired", total(rep.Expired),
		"unconfirmed", total(rep.Unconfirmed), "by_purpose", byPurpose(rep), "took", time.Since(began).Round(time.Millisecond).String()}
	switch {
	case err != nil && ctx.Err() != nil:
		r.log.Info("retention sweep stopped with the server; the next one goes on from here", attrs...)
		return true
	case err != nil:
		r.log.Error("retention sweep failed; the next one goes on from here", append(attrs, "err", err)...)
		return true
	}
	r.log.Info("retention sweep", attrs...)
	return true
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// byPurpose lists, for the log, each purpose the sweep changed with its
// counts, e.g. {"newsletter": {"noticed": 3, "expired": 1}}.
func byPurpose(rep optin.SweepReport) map[string]map[string]int {
	out := map[string]map[string]int{}
	for what, m := range map[string]map[string]int{"noticed": rep.Noticed, "expired": rep.Expired, "unconfirmed": rep.Unconfirmed} {
		for p, n := range m {
			if out[p] == nil {
				out[p] = map[string]int{}
			}
			out[p][what] = n
		}
	}
	return out
}
