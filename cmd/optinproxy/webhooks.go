package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/admin"
	"optinproxy/config"
	"optinproxy/notices"
	"optinproxy/optin"
	"optinproxy/upstream"
	"optinproxy/webhooks"
)

// newReceiver builds the inbound webhooks of /webhooks/ from the
// configuration. A sender that is not configured answers 404. rates is
// shared with the relay, which counts the copies the complaints are
// measured against. notify is outbound.notify: a CRM's erasure keeps the
// address for the outbound targets.
func newReceiver(cfg *config.Config, ledger *optin.Ledger, rates *optin.DomainRates, notify bool, reg prometheus.Registerer, log *slog.Logger) (*webhooks.Receiver, error) {
	w := &cfg.Webhooks
	return webhooks.NewReceiver(webhooks.ReceiverOptions{
		Ledger:        ledger,
		NotifyErasure: notify,
		Mailchimp:     webhooks.MailchimpOptions{Secret: w.Mailchimp.Secret, Lists: w.Mailchimp.Lists},
		Mandrill:      webhooks.MandrillOptions{Key: w.Mandrill.Key, URL: w.Mandrill.URL},
		CRM:           webhooks.CRMOptions{Secret: w.CRM.Secret, Tolerance: time.Duration(w.CRM.Tolerance)},
		DedupWindow:   time.Duration(w.DedupWindow),
		Rates:         rates,
		Metrics:       reg,
		Logger:        log,
	})
}

// outbound is the dispatcher of the outbox and what the admin API and
// the sync command use of it.
type outbound struct {
	dispatcher *webhooks.Dispatcher
	sync       admin.Syncer
	// notify is set when any target is configured: an erasure then keeps
	// the address for them (optin.ErasureRequest.Notify).
	notify bool

	// What a reload builds the targets again from: the HTTP client, the
	// endpoints by target name with the entries they were made of, the
	// Mailchimp and Mandrill targets (changed by a restart only), and the
	// confirmations target with the purposes it was made for.
	client     *retryablehttp.Client
	endpoints  map[string]endpoint
	fixed      []webhooks.Target
	confirm    *notices.Confirmations
	confirmFor map[string]config.Purpose
}

// endpoint is one outbound endpoint and the entry it was made of.
type endpoint struct {
	conf   config.Outbound
	target *webhooks.Endpoint
}

// newOutbound builds the outbox's targets from the configuration: each
// outbound endpoint, the Mailchimp audience, Mandrill's rejection list,
// and the double opt-in confirmations mailed through up. With none it
// still runs, to prune the outbox.
func newOutbound(cfg *config.Config, ledger *optin.Ledger, up upstream.Sender, reg prometheus.Registerer, log *slog.Logger) (*outbound, error) {
	w := &cfg.Webhooks
	out := &outbound{client: webhooks.NewHTTPClient(webhooks.HTTPClientOptions{})}
	eps, err := out.endpointsOf(cfg, log)
	if err != nil {
		return nil, err
	}
	out.endpoints = eps
	if api := &w.MailchimpAPI; api.APIKey != "" {
		mc, err := webhooks.NewMailchimpClient(webhooks.MailchimpClientOptions{APIKey: api.APIKey, BaseURL: api.BaseURL})
		if err != nil {
			return nil, fmt.Errorf("webhooks.mailchimp_api: %w", err)
		}
		aud, err := webhooks.NewAudience(webhooks.AudienceOptions{Client: mc, ListID: api.ListID, Purpose: api.Purpose})
		if err != nil {
			return nil, fmt.Errorf("webhooks.mailchimp_api: %w", err)
		}
		out.fixed = append(out.fixed, aud)
		synclog := log.With("component", "mailchimp.sync")
		out.sync = func(ctx context.Context) (any, error) {
			r, err := webhooks.SyncAudience(ctx, webhooks.SyncOptions{Client: mc, ListID: api.ListID, Purpose: api.Purpose, Ledger: ledger, Logger: synclog})
			var apiErr *webhooks.APIError
			if errors.As(err, &apiErr) {
				return r, &admin.SyncError{Err: err}
			}
			return r, err
		}
	}
	if m := &w.MandrillAPI; m.APIKey != "" {
		rj, err := webhooks.NewMandrillRejects(webhooks.RejectsOptions{APIKey: m.APIKey, BaseURL: m.BaseURL, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("webhooks.mandrill_api: %w", err)
		}
		out.fixed = append(out.fixed, rj)
	}
	out.notify = out.announces(out.endpoints)
	if out.confirm, err = out.confirmationsOf(cfg, ledger, up, log); err != nil {
		return nil, err
	}
	out.confirmFor = cfg.Purposes
	d, err := webhooks.NewDispatcher(webhooks.DispatcherOptions{
		Store:      ledger.Store(),
		Targets:    out.targets(out.endpoints, out.confirm),
		Logger:     log,
		DeadAfter:  time.Duration(w.Outbox.DeadAfter),
		RetiredFor: time.Duration(w.Outbox.RetiredFor),
		Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	out.dispatcher = d
	return out, nil
}

// announces reports whether erasures are announced to the outbox's
// targets with the endpoints eps: erasure notices are for the processors
// that hold the address; the confirmations target mails only pending
// subjects.
func (o *outbound) announces(eps map[string]endpoint) bool {
	return len(eps)+len(o.fixed) > 0
}

// endpointsOf makes the endpoints of webhooks.outbound, keeping those of
// o.endpoints whose entry did not change, so that a reload leaves them
// running.
func (o *outbound) endpointsOf(cfg *config.Config, log *slog.Logger) (map[string]endpoint, error) {
	eps := make(map[string]endpoint, len(cfg.Webhooks.Outbound))
	for i, c := range cfg.Webhooks.Outbound {
		name := webhooks.EndpointName(c.URL)
		if _, dup := eps[name]; dup {
			return nil, fmt.Errorf("webhooks.outbound[%d]: the same url as an entry before it", i)
		}
		if old, ok := o.endpoints[name]; ok && reflect.DeepEqual(old.conf, c) {
			eps[name] = old
			continue
		}
		events := make([]optin.EventType, len(c.Events))
		for j, e := range c.Events {
			events[j] = optin.EventType(e)
		}
		ep, err := webhooks.NewEndpoint(webhooks.EndpointOptions{URL: c.URL, Secret: c.Secret, Events: events, Client: o.client})
		if err != nil {
			return nil, fmt.Errorf("webhooks.outbound[%d]: %w", i, err)
		}
		eps[name] = endpoint{conf: c, target: ep}
		// outbox list names targets; the log says which URL each is.
		log.Info("outbound webhook", "target", ep.Name(), "url", redactURL(c.URL))
	}
	return eps, nil
}

// confirmationsOf is the confirmations target when a purpose asks for
// double opt-in: o.confirm when the purposes did not change since it was
// made, else a new one.
func (o *outbound) confirmationsOf(cfg *config.Config, ledger *optin.Ledger, up upstream.Sender, log *slog.Logger) (*notices.Confirmations, error) {
	if !doubleOptIn(cfg) {
		return nil, nil
	}
	if o.confirm != nil && reflect.DeepEqual(o.confirmFor, cfg.Purposes) {
		return o.confirm, nil
	}
	return newConfirmations(cfg, ledger, up, log)
}

// targets lists the dispatcher's targets.
func (o *outbound) targets(eps map[string]endpoint, confirm *notices.Confirmations) []webhooks.Target {
	var ts []webhooks.Target
	for _, ep := range eps {
		ts = append(ts, ep.target)
	}
	ts = append(ts, o.fixed...)
	if confirm != nil {
		ts = append(ts, confirm)
	}
	return ts
}

// outboxAPI is the dispatcher as the admin API sees it.
type outboxAPI struct{ d *webhooks.Dispatcher }

func (o outboxAPI) Deliveries(ctx context.Context, q optin.DeliveryQuery) (optin.DeliveryPage, error) {
	return o.d.List(ctx, q)
}

// Replay answers optin.ErrNotFound for an id that names no dead delivery
// of a configured target, so that the API answers 404.
func (o outboxAPI) Replay(ctx context.Context, id string) (optin.OutboxDelivery, error) {
	target, eventID, err := webhooks.ParseID(id)
	if err != nil {
		return optin.OutboxDelivery{}, fmt.Errorf("%w: %v", optin.ErrNotFound, err)
	}
	d, err := o.d.Replay(ctx, target, eventID)
	if errors.Is(err, webhooks.ErrUnknownTarget) || errors.Is(err, webhooks.ErrNotDead) {
		return d, fmt.Errorf("%w: %v", optin.ErrNotFound, err)
	}
	return d, err
}

// maxCopyDomains bounds the domain label of optinproxy_relayed_copies_total,
// as the complaint metrics bound theirs.
const maxCopyDomains = 100

// countCopies is the relay's Sent: each relayed copy counts into the
// complaint rates and into a counter by From domain, which, summed over
// several instances, gives the rate that one instance cannot see alone.
func countCopies(rates *optin.DomainRates, reg prometheus.Registerer) func(domain string, n int) {
	copies := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "optinproxy_relayed_copies_total",
		Help: "Copies the upstream took, by the message's From: domain; at most 100 domains, the rest as \"other\". The denominator of the complaint rate.",
	}, []string{"domain"})
	reg.MustRegister(copies)
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(domain string, n int) {
		rates.Sent(domain, n)
		if domain == "" {
			domain = "unknown"
		}
		mu.Lock()
		if !seen[domain] {
			if len(seen) >= maxCopyDomains {
				domain = optin.OtherDomain
			} else {
				seen[domain] = true
			}
		}
		mu.Unlock()
		copies.WithLabelValues(domain).Add(float64(n))
	}
}
