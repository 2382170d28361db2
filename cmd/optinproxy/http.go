package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"optinproxy/admin"
	"optinproxy/config"
	"optinproxy/optin"
	"optinproxy/portal"
	"optinproxy/unsubscribe"
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

// httpTimeouts bound how long one client may hold a connection of the
// HTTP listener. Without them a client that announces a body and sends
// none, or keeps a connection open and idle, holds it for ever.
type httpTimeouts struct {
	header time.Duration // the request line and headers
	read   time.Duration // the whole request, body included
	write  time.Duration // from the end of the request to the end of the answer
	idle   time.Duration // a kept-alive connection waiting for its next request
	long   time.Duration // reading and answering an import or a verify, once its token is checked
}

// defaultHTTPTimeouts: a body other than an import is at most 1 MiB, so
// a minute to read it and a minute to answer is plenty even on a slow
// link. Idle connections stay two minutes, longer than the 60 s after
// which load balancers commonly drop theirs, so that the proxy is not
// the one to close a connection a balancer is about to reuse. An import
// (up to 256 MiB, applied while it is read) and a verify (every subject)
// get 15 minutes.
var defaultHTTPTimeouts = httpTimeouts{
	header: 10 * time.Second,
	read:   time.Minute,
	write:  time.Minute,
	idle:   2 * time.Minute,
	long:   15 * time.Minute,
}

// newHTTPServer is the HTTP listener's server. It has its own listener
// and shares no limit with the SMTP side, so a flood of SMTP clients
// leaves it serving.
func newHTTPServer(handler http.Handler, t httpTimeouts, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: t.header,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
	}
}

// served is what the HTTP listener serves, and the parts of it the rest
// of the server uses: the unsubscribe pages (for mail to the mailto
// address), the portal (closed after the listener), the outbox's
// dispatcher (run beside the listeners), and what a reload changes.
type served struct {
	handler  http.Handler
	unsub    *unsubscribe.Handler
	confirm  *unsubscribe.ConfirmHandler
	api      *admin.API
	portal   *portal.Handler
	outbound *outbound
	ledger   *optin.Ledger
}

// newHandler mounts everything the HTTP listener serves: the operational
// endpoints, the admin API, the unsubscribe pages, the portal and the
// inbound webhooks. long is how long an import, a verify or a Mailchimp sync may
// take (httpTimeouts.long). rates is shared with the relay.
func newHandler(cfg *config.Config, reg *prometheus.Registry, store optin.Store, up upstream.Sender, rates *optin.DomainRates, log *slog.Logger, long time.Duration) (*served, error) {
	ledger, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: purposes(cfg), PolicyVersion: cfg.Policy.CurrentVersion})
	if err != nil {
		return nil, err
	}
	tokens, err := adminTokens(cfg)
	if err != nil {
		return nil, err
	}
	out, err := newOutbound(cfg, ledger, up, reg, log)
	if err != nil {
		return nil, err
	}
	roles, err := optin.NewRoleAddresses(cfg.Policy.RoleAddresses.Add, cfg.Policy.RoleAddresses.Remove)
	if err != nil {
		return nil, fmt.Errorf("policy.role_addresses: %w", err)
	}
	unsub, err := newUnsubscribeHandler(cfg, ledger, reg, log)
	if err != nil {
		return nil, err
	}
	pt, err := newPortal(cfg, ledger, unsub.Tokens(), up, portalEraser{ledger, out.notify}, reg, log)
	if err != nil {
		return nil, err
	}
	api, err := admin.New(admin.Options{Ledger: ledger, Tokens: tokens, Logger: log, LongTimeout: long,
		Outbox: outboxAPI{out.dispatcher}, MailchimpSync: out.sync, PortalLink: pt.Link,
		PolicyVersion: cfg.Policy.CurrentVersion, Processing: processingRecord(cfg),
		Roles: roles, Monitor: cfg.Policy.Mode == config.ModeMonitor, NotifyErasure: out.notify})
	if err != nil {
		return nil, err
	}
	confirm, err := newConfirmHandler(cfg, ledger, unsub.Tokens(), reg, log)
	if err != nil {
		return nil, err
	}
	hooks, err := newReceiver(cfg, ledger, rates, out.notify, reg, log)
	if err != nil {
		return nil, err
	}
	mux := newHTTPHandler(reg, []check{{name: "upstream", fn: up.Ping}, {name: "store", fn: store.Ping}})
	mux.Handle("/api/v1/", api.Handler())
	mux.Handle("/u/", unsub)
	mux.Handle("/confirm/", confirm)
	mux.Handle("/p", pt)
	mux.Handle("/p/", pt)
	mux.Handle("/webhooks/", hooks.Handler())
	return &served{handler: mux, unsub: unsub, confirm: confirm, api: api, portal: pt, outbound: out, ledger: ledger}, nil
}

// newUnsubscribeHandler builds the pages of /u/TOKEN. The body cap and
// method checks are the handler's own.
func newUnsubscribeHandler(cfg *config.Config, ledger *optin.Ledger, reg prometheus.Registerer, log *slog.Logger) (*unsubscribe.Handler, error) {
	tokens, err := unsubscribeTokens(cfg)
	if err != nil {
		return nil, err
	}
	return unsubscribe.NewHandler(unsubscribe.HandlerOptions{
		Tokens:   tokens,
		Ledger:   ledger,
		Language: cfg.Unsubscribe.Language,
		Logger:   log,
		Metrics:  reg,
	})
}
