package webhooks

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of one delivery attempt, as the deliveries metric counts them.
const (
	outcomeDelivered = "delivered"
	outcomeRetry     = "retry"
	outcomeDead      = "dead"
)

// dispatchMetrics are the Dispatcher's metrics; the zero value (no
// registerer) records nothing.
type dispatchMetrics struct {
	deliveries *prometheus.CounterVec
	pending    *prometheus.GaugeVec
}

func newDispatchMetrics(reg prometheus.Registerer) (*dispatchMetrics, error) {
	m := &dispatchMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optinproxy_webhook_deliveries_total",
			Help: "Outbound delivery attempts by target and outcome (delivered, retry, dead).",
		}, []string{"target", "outcome"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "optinproxy_outbox_pending",
			Help: "Pending outbound deliveries per target, on the instance holding the target's lease.",
		}, []string{"target"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *dispatchMetrics) outcome(target, outcome string) {
	m.deliveries.WithLabelValues(target, outcome).Inc()
}

func (m *dispatchMetrics) setPending(target string, n int) {
	m.pending.WithLabelValues(target).Set(float64(n))
}
