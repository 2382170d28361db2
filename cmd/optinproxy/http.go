package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"optinproxy/admin"
	"optinproxy/config"
	"optinproxy/optin"
	"optinproxy/upstream"
)

// check is one readiness condition; nil means ready.
type check struct {
	name string
	fn   func(ctx context.Context) error
}

// newHTTPHandler serves the operational endpoints. Later issues mount the
// unsubscribe pages, webhooks and admin API on the same mux.
func newHTTPHandler(reg *prometheus.Registry, checks []check) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	ready := &readiness{checks: checks, ttl: 2 * time.Second}
	mux.HandleFunc("GET /readyz", ready.serve)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// readiness runs the checks at most once per ttl, so that a load
// balancer polling /readyz does not dial the upstream on every probe.
type readiness struct {
	checks []check
	ttl    time.Duration

	mu      sync.Mutex
	at      time.Time
	results map[string]string
	ok      bool
}

func (rd *readiness) serve(w http.ResponseWriter, r *http.Request) {
	rd.mu.Lock()
	if time.Since(rd.at) > rd.ttl {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		rd.results, rd.ok = map[string]string{}, true
		for _, c := range rd.checks {
			if err := c.fn(ctx); err != nil {
				rd.results[c.name] = err.Error()
				rd.ok = false
			} else {
				rd.results[c.name] = "ok"
			}
		}
		cancel()
		rd.at = time.Now()
	}
	results, ok := rd.results, rd.ok
	rd.mu.Unlock()
	status, code := "ready", http.StatusOK
	if !ok {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": results})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// newHandler mounts everything the HTTP listener serves: the operational
// endpoints and the admin API.
func newHandler(cfg *config.Config, reg *prometheus.Registry, store optin.Store, up upstream.Sender, log *slog.Logger) (http.Handler, error) {
	ledger, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: purposes(cfg), PolicyVersion: cfg.Policy.CurrentVersion})
	if err != nil {
		return nil, err
	}
	tokens, err := adminTokens(cfg)
	if err != nil {
		return nil, err
	}
	api, err := admin.New(admin.Options{Ledger: ledger, Tokens: tokens, Logger: log})
	if err != nil {
		return nil, err
	}
	mux := newHTTPHandler(reg, []check{{name: "upstream", fn: up.Ping}, {name: "store", fn: store.Ping}})
	mux.Handle("/api/v1/", api.Handler())
	return mux, nil
}
