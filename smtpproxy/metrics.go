package smtpproxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections prometheus.Gauge
	// inflight and inflightPeak read the byte budget when scraped.
	inflight     prometheus.GaugeFunc
	inflightPeak prometheus.GaugeFunc
	// refused counts connections refused over the limits, by reason.
	refused    *prometheus.CounterVec
	messages   *prometheus.CounterVec
	recipients *prometheus.CounterVec
	replies    *prometheus.CounterVec
	upstream   *prometheus.HistogramVec
	decisions  *prometheus.CounterVec
	// receiptErrors counts receipts the store could not take.
	receiptErrors prometheus.Counter
	dsns          *prometheus.CounterVec
	// brokenSignatures counts sender DKIM signatures a copy broke.
	brokenSignatures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, inflight *budget) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "optinproxy_smtp_connections",
			Help: "SMTP client connections open now.",
		}),
		inflight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "optinproxy_smtp_inflight_bytes",
			Help: "Message bytes held by transactions now, against smtp.max_inflight_bytes.",
		}, func() float64 { return float64(inflight.used.Load()) }),
		inflightPeak: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "optinproxy_smtp_inflight_bytes_peak",
			Help: "The most message bytes held by transactions at once since the start, against smtp.max_inflight_bytes.",
		}, func() float64 { return float64(inflight.peak.Load()) }),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_smtp_connections_refused_total",
			Help: "SMTP connections refused with 421 over the connection limits, by reason: global, per_ip.",
		}, []string{"reason"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_smtp_messages_total",
			Help: "Messages received, by outcome: relayed, partial, blocked, tempfail, rejected.",
		}, []string{"result"}),
		recipients: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_smtp_recipients_total",
			Help: "Recipients of received messages, by outcome: relayed, blocked, duplicate, refused, failed.",
		}, []string{"result"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_smtp_replies_total",
			Help: "Replies to MAIL, RCPT, DATA and AUTH, by SMTP code.",
		}, []string{"code"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "optinproxy_upstream_send_seconds",
			Help:    "Time to hand one copy to the upstream, by result: ok, partial, tempfail, permfail.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"result"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_decisions_total",
			Help: "Decisions on recipients, by purpose, decision (allow, block) and reason; counted in monitor mode too.",
		}, []string{"purpose", "decision", "reason"}),
		receiptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optinproxy_receipt_errors_total",
			Help: "Receipts (message.relayed, message.blocked) the consent store failed to record.",
		}),
		brokenSignatures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optinproxy_dkim_broken_signatures_total",
			Help: "Sender DKIM signatures that no longer verify after the relay changed a copy (removed when the proxy signs).",
		}),
		dsns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_dsn_total",
			Help: "Delivery status notifications for blocked recipients, by result: sent, failed.",
		}, []string{"result"}),
	}
	for _, reason := range []string{refusedGlobal, refusedPerIP} {
		m.refused.WithLabelValues(reason) // shown at 0 before the first refusal
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connections, m.inflight, m.inflightPeak, m.refused, m.messages, m.recipients, m.replies, m.upstream, m.decisions, m.receiptErrors, m.dsns, m.brokenSignatures} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
