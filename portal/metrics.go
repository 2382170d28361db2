package portal

import "github.com/prometheus/client_golang/prometheus"

// actions are the labels of optinproxy_portal_actions_total. None tells
// whether a requested link was mailed: the metrics are readable where
// the form is, and must not answer what the form does not.
var actions = []string{"request", "limited", "refused", "view", "grant", "withdraw", "move", "export", "erase"}

// newCounter makes optinproxy_portal_actions_total, every action at 0.
func newCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	count := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "optinproxy_portal_actions_total",
		Help: "Portal actions: link requests at /p (request; limited when over a rate limit), forms refused as cross-site or without their CSRF token (refused), portal views, grants, withdrawals, address changes (move), downloads (export) and erasures.",
	}, []string{"action"})
	for _, a := range actions {
		count.WithLabelValues(a)
	}
	if reg != nil {
		if err := reg.Register(count); err != nil {
			return nil, err
		}
	}
	return count, nil
}
