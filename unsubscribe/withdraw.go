package unsubscribe

import (
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
)

// Channels an unsubscribe comes through, as events and metrics name them.
const (
	ChannelOneClick = "one-click" // a mail client's RFC 8058 POST
	ChannelPage     = "page"      // the confirm button of GET /u/TOKEN
	ChannelMailto   = "mailto"    // mail to unsubscribe+TOKEN@mailto_domain
)

var channels = []string{ChannelOneClick, ChannelPage, ChannelMailto}

// actor names the unsubscribe door in the events it records.
const actor = "unsubscribe"

// Tokens are the tokens the handler reads, for making links that it will.
func (h *Handler) Tokens() *Tokens { return h.tokens }

// Check reports whether token is one this proxy issued, with one of its
// secrets; the SMTP side asks it before it accepts mail to the mailto
// address.
func (h *Handler) Check(token string) error {
	_, err := h.tokens.Parse(token)
	return err
}

// Apply withdraws the consent of a token's claim for its purpose, as the
// one-click POST does: the SMTP side calls it for mail to the mailto
// address, with ChannelMailto. Repeating it records nothing new. Errors
// wrap ErrBadToken (nothing changed) or the store's error.
func (h *Handler) Apply(ctx context.Context, token, channel string) error {
	if !slices.Contains(channels, channel) {
		return fmt.Errorf("unsubscribe: unknown channel %q", channel)
	}
	c, err := h.tokens.Parse(token)
	if err != nil {
		return err
	}
	_, known := h.ledger.Purposes()[c.Purpose]
	return h.withdraw(ctx, c, !known, channel, optin.Evidence{})
}

// withdraw records the withdrawal of c's purpose and, with all, the
// unsubscribed_all suppression that blocks every marketing purpose. What
// is already recorded is not recorded again, so a repeated POST (or a
// scanner that POSTs) adds nothing to the subject's history.
func (h *Handler) withdraw(ctx context.Context, c Claim, all bool, channel string, ev optin.Evidence) error {
	st, err := h.standing(ctx, c)
	if err != nil {
		return err
	}
	applied := false
	_, known := h.ledger.Purposes()[c.Purpose]
	if known && (st.Consent == nil || st.Consent.Status != optin.StatusWithdrawn) {
		ev.Extra = map[string]string{"channel": channel}
		if c.Message != "" {
			ev.Extra["message"] = c.Message
		}
		res, err := h.ledger.Withdraw(ctx, c.Subject, c.Purpose, optin.ConsentChange{
			Source: optin.SourceUnsubscribe, Actor: actor, Evidence: ev, At: h.now()})
		if err != nil {
			return err
		}
		applied = applied || res.Applied
	}
	if all && !slices.Contains(st.Suppressions, optin.SuppressUnsubscribedAll) {
		res, err := h.ledger.Suppress(ctx, c.Subject, optin.SuppressUnsubscribedAll, actor)
		if err != nil {
			return err
		}
		applied = applied || res.Applied
	}
	if applied {
		h.count.WithLabelValues(c.Purpose, channel).Inc()
		h.log.Info("unsubscribed", "purpose", c.Purpose, "all", all, "channel", channel, "subject", c.Subject)
	}
	return nil
}

// standing reads what is recorded for c's subject and purpose.
func (h *Handler) standing(ctx context.Context, c Claim) (optin.Standing, error) {
	sts, err := h.ledger.Store().Lookup(ctx, optin.LookupQuery{Purpose: c.Purpose, Addresses: []optin.Address{c.Subject}})
	if err != nil {
		return optin.Standing{}, err
	}
	if len(sts) != 1 {
		return optin.Standing{}, fmt.Errorf("unsubscribe: store answered %d standings for one address", len(sts))
	}
	return sts[0], nil
}

// newCounter makes optinproxy_unsubscribes_total, each configured purpose
// with links shown at 0 on each channel before its first unsubscribe.
func newCounter(reg prometheus.Registerer, purposes optin.Purposes) (*prometheus.CounterVec, error) {
	count := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "optinproxy_unsubscribes_total",
		Help: "Unsubscribes recorded, by the link's purpose and channel (one-click, page, mailto); repeats are not counted.",
	}, []string{"purpose", "channel"})
	for _, p := range purposes {
		if p.Unsubscribe {
			for _, ch := range channels {
				count.WithLabelValues(p.Name, ch)
			}
		}
	}
	if reg != nil {
		if err := reg.Register(count); err != nil {
			return nil, err
		}
	}
	return count, nil
}
