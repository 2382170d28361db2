package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/config"
	"optinproxy/notices"
	"optinproxy/optin"
	"optinproxy/smtpproxy"
)

// takeReloadable copies into dst the keys of src that a reload puts in
// force while the server runs (docs/reload.md); every other key needs a
// restart.
func takeReloadable(dst, src *config.Config) {
	dst.SMTP.Users = src.SMTP.Users
	dst.Purposes = src.Purposes
	dst.Policy.DefaultPurpose = src.Policy.DefaultPurpose
	dst.Policy.RoleAddresses = src.Policy.RoleAddresses
	dst.Unsubscribe.Templates = src.Unsubscribe.Templates
	dst.Unsubscribe.Footer = src.Unsubscribe.Footer
	dst.Webhooks.Outbound = src.Webhooks.Outbound
}

// reloader re-reads the configuration when serve gets SIGHUP. It is used
// from serve's goroutine only, so reloads never overlap.
type reloader struct {
	path    string
	environ []string
	log     *slog.Logger
	a       *app
	// running is the configuration in force: the one serve started with,
	// and the reloadable keys of the last reload that worked.
	running *config.Config
	reloads *prometheus.CounterVec
	lastOK  prometheus.Gauge
	// advised are the configuration's warnings logged already: a reload
	// logs only new ones.
	advised map[string]bool
}

// newReloader registers the reload metrics; advice are the warnings
// logged at start.
func newReloader(path string, environ []string, a *app, cfg *config.Config, advice []string, log *slog.Logger) (*reloader, error) {
	r := &reloader{path: path, environ: environ, a: a, running: cfg, log: log.With("component", "reload"), advised: map[string]bool{},
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_config_reloads_total",
			Help: "Configuration reloads (SIGHUP) by result: ok, or error when the configuration had problems and the running one stayed.",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "optinproxy_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration in force was read: at start, or by the last reload that worked (Unix time).",
		}),
	}
	for _, w := range advice {
		r.advised[w] = true
	}
	r.reloads.WithLabelValues("ok")
	r.reloads.WithLabelValues("error")
	r.lastOK.SetToCurrentTime()
	for _, c := range []prometheus.Collector{r.reloads, r.lastOK} {
		if err := a.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// reload reads the file and the environment serve was started with, and
// when they are valid puts the reloadable keys in force; the others, when
// changed, are logged as needing a restart. A configuration with problems
// changes nothing: each problem is logged with its line and key.
func (r *reloader) reload(ctx context.Context) {
	r.log.Info("reloading the configuration", "file", r.path)
	var dk dkimKeys
	cfg, err := config.Load(r.path, r.environ, dk.check)
	if err != nil {
		r.refuse(err)
		return
	}
	next := *r.running
	takeReloadable(&next, cfg)
	for _, key := range changedKeys(&next, cfg) {
		r.log.Warn("configuration reload: this key changed and needs a restart; its running value stays", "key", key)
	}
	for _, w := range append(cfg.Warnings(), dk.warnings...) {
		if !r.advised[w] {
			r.advised[w] = true
			r.log.Warn("configuration", "advice", w)
		}
	}
	c, err := r.prepare(&next)
	if err == nil {
		err = r.apply(ctx, c)
	}
	if err != nil {
		r.refuse(err)
		return
	}
	r.running = &next
	r.reloads.WithLabelValues("ok").Inc()
	r.lastOK.SetToCurrentTime()
	r.log.Info("configuration reloaded", "users", len(next.SMTP.Users), "purposes", len(next.Purposes),
		"outbound_webhooks", len(next.Webhooks.Outbound))
}

// refuse logs why a reload changed nothing: every problem of the file,
// each with its line and key.
func (r *reloader) refuse(err error) {
	r.reloads.WithLabelValues("error").Inc()
	var ce *config.Errors
	if !errors.As(err, &ce) {
		r.log.Error("configuration not reloaded; the running configuration stays", "err", err)
		return
	}
	for _, p := range ce.Problems {
		r.log.Error("configuration reload: problem", "file", ce.File, "line", p.Line, "env", p.Env, "key", p.Key, "problem", p.Msg)
	}
	r.log.Error("configuration not reloaded; the running configuration stays", "problems", len(ce.Problems))
}

// change is a reload made ready: everything that can fail is built.
type change struct {
	purposes  optin.Purposes
	rules     smtpproxy.Rules
	roles     *optin.RoleAddresses
	footers   *footers
	endpoints map[string]endpoint
	confirm   *notices.Confirmations
	// confirmFor are the purposes confirm was made for.
	confirmFor map[string]config.Purpose
}

func (r *reloader) prepare(cfg *config.Config) (*change, error) {
	roles, err := optin.NewRoleAddresses(cfg.Policy.RoleAddresses.Add, cfg.Policy.RoleAddresses.Remove)
	if err != nil {
		return nil, fmt.Errorf("policy.role_addresses: %w", err)
	}
	c := &change{purposes: purposes(cfg), roles: roles, confirmFor: cfg.Purposes}
	c.rules = smtpproxy.Rules{Users: smtpUsers(cfg), Purposes: c.purposes, DefaultPurpose: cfg.Policy.DefaultPurpose, Roles: roles}
	if c.footers, err = r.a.personal.footersOf(cfg); err != nil {
		return nil, err
	}
	out := r.a.parts.outbound
	if c.endpoints, err = out.endpointsOf(cfg, r.log); err != nil {
		return nil, err
	}
	if c.confirm, err = out.confirmationsOf(cfg, r.a.parts.ledger, r.a.upstream, r.log); err != nil {
		return nil, err
	}
	if out.announces(c.endpoints) != out.notify {
		// Erasures are announced to the targets, or not, by what the
		// server started with; the rest of the change still applies.
		r.log.Warn("configuration reload: whether erasures are announced to outbound targets changes only with a restart", "key", "webhooks.outbound", "announced", out.notify)
	}
	return c, nil
}

// apply puts c in force. Only the first two steps can fail (they check
// again what prepare built); after them nothing does, so a reload is
// applied whole or not at all.
func (r *reloader) apply(ctx context.Context, c *change) error {
	ledger := r.a.parts.ledger
	old := ledger.Purposes()
	if err := ledger.SetPurposes(c.purposes); err != nil {
		return err
	}
	if err := r.a.smtp.Reload(c.rules); err != nil {
		ledger.SetPurposes(old) // valid: it was in force
		return err
	}
	r.a.parts.api.SetRoles(c.roles)
	r.a.personal.footers.Store(c.footers)
	out := r.a.parts.outbound
	out.endpoints, out.confirm, out.confirmFor = c.endpoints, c.confirm, c.confirmFor
	// SetTargets waits for a removed target's attempts under way.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := out.dispatcher.SetTargets(sctx, out.targets(c.endpoints, c.confirm)); err != nil {
		r.log.Warn("outbox targets not placed yet; each takes its place when it first runs", "err", err)
	}
	return nil
}

// changedKeys names the keys whose values differ between a and b, as
// they are written in the file: the deepest section that differs, or the
// list or map as a whole.
func changedKeys(a, b *config.Config) []string {
	keys := diffKeys(reflect.ValueOf(*a), reflect.ValueOf(*b), "")
	slices.Sort(keys)
	return slices.Compact(keys)
}

// secretFiles names the file key of a secret read from a file, for the
// fields that are not in the YAML themselves.
var secretFiles = map[string]string{"Password": "password_file", "APIKey": "api_key_file", "Token": "token_file"}

func diffKeys(a, b reflect.Value, path string) []string {
	if a.Kind() != reflect.Struct {
		if reflect.DeepEqual(a.Interface(), b.Interface()) {
			return nil
		}
		return []string{path}
	}
	var keys []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || name == "" {
			name = secretFiles[f.Name]
			if name == "" {
				name = strings.ToLower(f.Name)
			}
		}
		if path != "" {
			name = path + "." + name
		}
		keys = append(keys, diffKeys(a.Field(i), b.Field(i), name)...)
	}
	return keys
}
