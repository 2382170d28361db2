package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"optinproxy/optin"
)

// DefaultMandrillURL is the Mailchimp Transactional API.
const DefaultMandrillURL = "https://mandrillapp.com/api/1.0"

// RejectsOptions configure NewMandrillRejects.
type RejectsOptions struct {
	// APIKey is the Transactional API key.
	APIKey string
	// BaseURL replaces DefaultMandrillURL (a test server).
	BaseURL string
	// Subaccount, when set, limits the entries to that subaccount.
	Subaccount string
	// Reasons are the suppressions that add the address; default all
	// (hard_bounce, complaint, unsubscribed_all, manual, erased). Leave
	// out unsubscribed_all when the account also sends transactional
	// mail: a rejection blocks every message.
	Reasons []optin.SuppressionReason
	// Purposes are purposes whose withdrawal adds the address too: those
	// the account sends nothing but (a marketing-only account). Default
	// none.
	Purposes   []string
	HTTPClient *http.Client
	// MaxConns caps the requests in flight; default MaxAPIConns.
	MaxConns int
	Now      func() time.Time
	Logger   *slog.Logger
}

// MandrillRejects is the Target that adds suppressed addresses to
// Mandrill's rejection list (rejects/add), so that mail sent through
// Mandrill around the proxy is blocked too. It sends the address and a
// comment naming the reason, nothing else. Safe for concurrent use.
type MandrillRejects struct {
	url        string
	key        string
	subaccount string
	reasons    []optin.SuppressionReason
	purposes   []string
	api        *apiCaller
	log        *slog.Logger
}

var _ Target = (*MandrillRejects)(nil)

// NewMandrillRejects validates opts.
func NewMandrillRejects(opts RejectsOptions) (*MandrillRejects, error) {
	if opts.APIKey == "" {
		return nil, errors.New("webhooks: mandrill: no API key")
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if base == "" {
		base = DefaultMandrillURL
	} else if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhooks: mandrill: base URL is not an http(s) URL")
	}
	if opts.Reasons == nil {
		opts.Reasons = []optin.SuppressionReason{optin.SuppressHardBounce, optin.SuppressComplaint,
			optin.SuppressUnsubscribedAll, optin.SuppressManual, optin.SuppressErased}
	}
	for _, r := range opts.Reasons {
		if !r.Valid() {
			return nil, fmt.Errorf("webhooks: mandrill: suppression reason %q", r)
		}
	}
	switch {
	case opts.MaxConns == 0:
		opts.MaxConns = MaxAPIConns
	case opts.MaxConns < 0:
		return nil, fmt.Errorf("webhooks: mandrill: max connections %d", opts.MaxConns)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	api := newAPICaller("mandrill", opts.HTTPClient, opts.MaxConns, opts.Now)
	api.permanent = mandrillPermanent
	return &MandrillRejects{
		url: base + "/rejects/add.json", key: opts.APIKey, subaccount: opts.Subaccount,
		reasons: opts.Reasons, purposes: opts.Purposes, api: api,
		log: opts.Logger.With("component", "mandrill-rejects"),
	}, nil
}

// mandrillPermanent names the Mandrill errors (all answered 500) that no
// retry changes.
func mandrillPermanent(_ int, name string) bool {
	switch name {
	case "Invalid_Key", "ValidationError", "Unknown_Subaccount", "PaymentRequired":
		return true
	}
	return false
}

// Name is "mandrill-rejects".
func (m *MandrillRejects) Name() string { return "mandrill-rejects" }

// Wants takes suppressions of the configured reasons, erasures when
// erased is one of them (an erasure is the erased suppression), and
// withdrawals of the configured purposes, except what Mandrill itself
// reported.
func (m *MandrillRejects) Wants(e optin.Event) bool {
	if e.Actor == ActorMandrill {
		return false
	}
	switch e.Type {
	case optin.EventSubjectErased:
		return slices.Contains(m.reasons, optin.SuppressErased)
	case optin.EventSuppressionAdded:
		r, ok := suppressedFor(e)
		return !ok || slices.Contains(m.reasons, r) // unreadable: Deliver says why
	case optin.EventConsentWithdrawn:
		return slices.Contains(m.purposes, e.Purpose)
	}
	return false
}

// Deliver adds the address to the rejection list. An erased subject's
// address is read only from its erasure's notice (optin.Erasure.Notify).
func (m *MandrillRejects) Deliver(ctx context.Context, d Delivery) (bool, error) {
	e := d.Event
	if e.Subject.IsZero() {
		return false, errors.New("webhooks: the subject was erased before its rejection reached Mandrill: its address can no longer be read")
	}
	comment := "optinproxy: withdrawn from " + e.Purpose
	switch e.Type {
	case optin.EventSuppressionAdded:
		r, _ := suppressedFor(e)
		comment = "optinproxy: suppressed (" + string(r) + ")"
	case optin.EventSubjectErased:
		comment = "optinproxy: suppressed (" + string(optin.SuppressErased) + ")"
	}
	req := struct {
		Key        string `json:"key"`
		Email      string `json:"email"`
		Comment    string `json:"comment"`
		Subaccount string `json:"subaccount,omitempty"`
	}{m.key, e.Subject.String(), comment, m.subaccount}
	var resp struct {
		Added bool `json:"added"`
	}
	if err := m.api.do(ctx, http.MethodPost, m.url, req, &resp); err != nil {
		return apiRetry(err), err
	}
	if !resp.Added {
		// Mandrill ignores an address on its allow list; no retry changes that.
		m.log.Warn("mandrill did not add the address to its rejection list; it may be on the allow list", "subject", e.Subject)
	}
	return false, nil
}

func suppressedFor(e optin.Event) (optin.SuppressionReason, bool) {
	var d struct {
		Reason optin.SuppressionReason `json:"reason"`
	}
	if len(e.Details) == 0 || json.Unmarshal(e.Details, &d) != nil || !d.Reason.Valid() {
		return "", false
	}
	return d.Reason, true
}
