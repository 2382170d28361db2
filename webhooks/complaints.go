package webhooks

import (
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
)

// The complaint rates mailbox providers hold senders to (Gmail's 2024
// bulk-sender rules: stay under 0.1%, never reach 0.3%).
const (
	complaintWarn  = 0.001
	complaintLimit = 0.003
)

// maxDomainLabels bounds the domain label of the complaint metrics; later
// domains are counted as "other".
const maxDomainLabels = 100

// complaints turns spam events into the complaint metrics and the
// once-a-day warnings per sending domain. Safe for concurrent use.
type complaints struct {
	rates *optin.DomainRates
	total *prometheus.CounterVec
	rate  *prometheus.Desc
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	labels map[string]bool
	warned map[string]warning // by domain
}

// warning is the highest level warned about for a domain on a day.
type warning struct {
	day   int64 // days since the Unix epoch, UTC
	level int   // 1: over 0.1%, 2: at or over 0.3%
}

func newComplaints(rates *optin.DomainRates, reg prometheus.Registerer, log *slog.Logger, now func() time.Time) (*complaints, error) {
	c := &complaints{rates: rates, log: log, now: now, labels: map[string]bool{}, warned: map[string]warning{},
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_complaints_total",
			Help: "Spam complaints received from Mandrill, by the sending (From) domain; at most 100 domains, the rest as \"other\".",
		}, []string{"domain"}),
		rate: prometheus.NewDesc("optinproxy_complaint_rate",
			"Spam complaints per copy relayed over the last 24 hours, by sending domain, as of the scrape (Gmail: stay under 0.001, never reach 0.003); domains with a complaint only.",
			[]string{"domain"}, nil),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.total, rateCollector{c}} {
			if err := reg.Register(col); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// record counts one complaint against domain (the message's sender's),
// updates the metrics and warns the first time a day that the domain's
// rate crosses each level. A domain is not personal data: it is logged.
func (c *complaints) record(domain string) {
	domain = strings.ToLower(domain)
	if domain == "" {
		domain = "unknown"
	}
	rate, sent, n := c.rates.Complaint(domain)
	label := c.label(domain)
	c.total.WithLabelValues(label).Inc()
	level := 0
	switch {
	case sent == 0:
		return // no copies counted: no rate to judge
	case rate >= complaintLimit:
		level = 2
	case rate > complaintWarn:
		level = 1
	default:
		return
	}
	if !c.firstToday(domain, level) {
		return
	}
	if level == 2 {
		c.log.Error("complaint rate at or over 0.3% over the last 24 hours: mailbox providers (Gmail) reject or spam-folder mail from such senders; stop and review this domain's marketing mail",
			"domain", domain, "rate", rate, "complaints", n, "sent", sent)
		return
	}
	c.log.Warn("complaint rate over 0.1% over the last 24 hours: Gmail asks senders to stay under 0.1% and never reach 0.3%",
		"domain", domain, "rate", rate, "complaints", n, "sent", sent)
}

// rateCollector reports each complained-about domain's rate when
// scraped: over the last 24 hours as of then, so that a day-old spike
// does not stand for ever.
type rateCollector struct{ c *complaints }

func (r rateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- r.c.rate }

func (r rateCollector) Collect(ch chan<- prometheus.Metric) {
	r.c.mu.Lock()
	domains := make([]string, 0, len(r.c.labels))
	for d := range r.c.labels {
		domains = append(domains, d)
	}
	r.c.mu.Unlock()
	// The domains past the label cap have a counter ("other"), no rate.
	for _, d := range domains {
		rate, _, _ := r.c.rates.Rate(d)
		ch <- prometheus.MustNewConstMetric(r.c.rate, prometheus.GaugeValue, rate, d)
	}
}

// label is domain when it is one of the first maxDomainLabels seen, else
// "other".
func (c *complaints) label(domain string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.labels[domain] {
		return domain
	}
	if len(c.labels) < maxDomainLabels {
		c.labels[domain] = true
		return domain
	}
	return optin.OtherDomain
}

// firstToday reports whether level is higher than any warned about for
// domain today, and remembers it.
func (c *complaints) firstToday(domain string, level int) bool {
	day := c.now().UTC().Unix() / 86400
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, had := c.warned[domain]; had && w.day == day && w.level >= level {
		return false
	}
	if len(c.warned) >= 10*maxDomainLabels {
		for d, w := range c.warned {
			if w.day != day {
				delete(c.warned, d)
			}
		}
	}
	c.warned[domain] = warning{day: day, level: level}
	return true
}
