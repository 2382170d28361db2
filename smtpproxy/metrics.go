package smtpproxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections prometheus.Gauge
	messages    *prometheus.CounterVec
	recipients  *prometheus.CounterVec
	replies     *prometheus.CounterVec
	upstream    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "optinproxy_smtp_connections",
			Help: "SMTP client connections open now.",
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_smtp_messages_total",
			Help: "Messages received, by outcome: relayed, partial, tempfail, rejected.",
		}, []string{"result"}),
		recipients: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_smtp_recipients_total",
			Help: "Recipients of received messages, by outcome: relayed, duplicate, refused, failed.",
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
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connections, m.messages, m.recipients, m.replies, m.upstream} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
