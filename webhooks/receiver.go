package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
)

// Defaults of ReceiverOptions.
const (
	DefaultDedupWindow          = 72 * time.Hour
	DefaultMaxBodyBytes         = 1 << 20
	DefaultMandrillMaxBodyBytes = 10 << 20
	DefaultCRMTolerance         = 5 * time.Minute
	// DefaultTimeout leaves a margin within Mailchimp's 10 seconds.
	DefaultTimeout = 8 * time.Second
)

// Actors of the changes the receivers and the sync record. The targets
// that write to Mailchimp and Mandrill do not send a change back where it
// came from.
const (
	ActorMailchimp     = "webhook:mailchimp"
	ActorMailchimpSync = "sync:mailchimp"
	ActorMandrill      = "webhook:mandrill"
	ActorCRM           = "webhook:crm"
)

// SourceMandrill is the source of the withdrawals Mandrill's unsub events
// record.
const SourceMandrill = "mandrill"

// Ledger is what the receivers change: *optin.Ledger.
type Ledger interface {
	Grant(ctx context.Context, a optin.Address, purpose string, cc optin.ConsentChange) (optin.Result, error)
	Withdraw(ctx context.Context, a optin.Address, purpose string, cc optin.ConsentChange) (optin.Result, error)
	Suppress(ctx context.Context, a optin.Address, reason optin.SuppressionReason, actor string) (optin.Result, error)
	WithdrawChange(a optin.Address, purpose string, cc optin.ConsentChange) (optin.Change, error)
	SuppressChange(a optin.Address, reason optin.SuppressionReason, actor string) (optin.Change, error)
	Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error)
	Move(ctx context.Context, from, to optin.Address, actor string, at time.Time) (optin.MoveResult, error)
	Erase(ctx context.Context, a optin.Address, req optin.ErasureRequest) (optin.ErasureResult, error)
	Purposes() optin.Purposes
	Store() optin.Store
}

var _ Ledger = (*optin.Ledger)(nil)

// MailchimpOptions configure /webhooks/mailchimp/{secret}; without a
// Secret the route answers 404.
type MailchimpOptions struct {
	// Secret is the last path segment of the URL registered at Mailchimp.
	Secret string
	// Lists maps an audience (list) id to the purpose its subscriptions
	// grant.
	Lists map[string]string
}

// MandrillOptions configure /webhooks/mandrill; without a Key the route
// answers 404.
type MandrillOptions struct {
	// Key is the webhook's key, as Mandrill shows it.
	Key string
	// URL is the webhook's URL exactly as registered at Mandrill: the
	// signature covers it, and behind a proxy the request does not tell it.
	URL string
}

// CRMOptions configure /webhooks/crm; without a Secret the route answers
// 404.
type CRMOptions struct {
	// Secret is the Standard Webhooks secret, "whsec_" and base64.
	Secret string
	// Tolerance is how far webhook-timestamp may be from now
	// (DefaultCRMTolerance when 0): older deliveries are refused as
	// replays.
	Tolerance time.Duration
}

// ReceiverOptions configure NewReceiver.
type ReceiverOptions struct {
	Ledger Ledger // required
	// NotifyErasure keeps the address of a CRM's erasure for the
	// outbound targets (optin.ErasureRequest.Notify): set when any is
	// configured.
	NotifyErasure bool
	// Marks remembers applied deliveries; the ledger's store when nil.
	Marks     Marks
	Mailchimp MailchimpOptions
	Mandrill  MandrillOptions
	CRM       CRMOptions
	// DedupWindow is how long a delivery is remembered (DefaultDedupWindow
	// when 0); a retry later than that is applied again, which the
	// ledger's ordering makes harmless for consent changes.
	DedupWindow time.Duration
	// MaxBodyBytes caps a Mailchimp or CRM body (DefaultMaxBodyBytes when
	// 0); MandrillMaxBodyBytes caps a Mandrill batch of up to 1,000
	// events (DefaultMandrillMaxBodyBytes when 0).
	MaxBodyBytes         int64
	MandrillMaxBodyBytes int64
	// Timeout bounds the work on one request, the store's included
	// (DefaultTimeout when 0); past it the answer is 503.
	Timeout time.Duration
	// Rates counts spam complaints against the copies relayed per From
	// domain; pass the relay's, else the receiver makes its own (which
	// knows no copies, so its rates stay 0).
	Rates *optin.DomainRates
	// Metrics registers optinproxy_webhook_events_total,
	// optinproxy_complaints_total and optinproxy_complaint_rate; nil
	// registers nowhere.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	Now     func() time.Time
}

// Receiver serves the inbound webhooks: Mailchimp audience events,
// Mandrill (Mailchimp Transactional) message events and signed CRM
// events. Each delivery is authenticated, applied through the ledger at
// most once within the dedup window, and acknowledged (2xx) only after
// the store has it; a store that cannot be reached answers 503, so that
// the sender retries. Nothing in a request's path calls out. Safe for
// concurrent use.
type Receiver struct {
	ledger    Ledger
	marks     Marks
	mailchimp MailchimpOptions
	mandrill  MandrillOptions
	crmSecret string
	// notifyErasure is ReceiverOptions.NotifyErasure.
	notifyErasure bool
	tolerance     time.Duration
	timeout       time.Duration
	window        time.Duration
	maxBody       int64
	maxBatch      int64
	complaint     *complaints
	events        *prometheus.CounterVec
	log           *slog.Logger
	now           func() time.Time
	mux           *http.ServeMux
}

// NewReceiver validates opts: every list must map to a configured purpose,
// a Mandrill key needs the registered URL, a CRM secret must parse.
func NewReceiver(opts ReceiverOptions) (*Receiver, error) {
	switch {
	case opts.Ledger == nil:
		return nil, errors.New("webhooks: receiver without a ledger")
	}
	if opts.Marks == nil {
		opts.Marks = opts.Ledger.Store()
	}
	purposes := opts.Ledger.Purposes()
	for list, purpose := range opts.Mailchimp.Lists {
		if _, ok := purposes[purpose]; !ok {
			return nil, fmt.Errorf("webhooks: mailchimp list %q: %w: %q", list, optin.ErrUnknownPurpose, purpose)
		}
	}
	if opts.Mandrill.Key != "" {
		u, err := url.Parse(opts.Mandrill.URL)
		if err != nil || !u.IsAbs() {
			return nil, errors.New("webhooks: mandrill needs the webhook's URL as registered (an absolute URL)")
		}
	}
	rc := &Receiver{ledger: opts.Ledger, marks: opts.Marks, mailchimp: opts.Mailchimp, mandrill: opts.Mandrill,
		tolerance: opts.CRM.Tolerance, timeout: opts.Timeout, window: opts.DedupWindow, maxBody: opts.MaxBodyBytes,
		maxBatch: opts.MandrillMaxBodyBytes, log: opts.Logger, now: opts.Now, mux: http.NewServeMux(), notifyErasure: opts.NotifyErasure}
	if opts.CRM.Secret != "" {
		if _, err := ParseSecret(opts.CRM.Secret); err != nil {
			return nil, fmt.Errorf("webhooks: crm secret: %w", err)
		}
		rc.crmSecret = opts.CRM.Secret
	}
	if rc.tolerance <= 0 {
		rc.tolerance = DefaultCRMTolerance
	}
	if rc.timeout <= 0 {
		rc.timeout = DefaultTimeout
	}
	if rc.window <= 0 {
		rc.window = DefaultDedupWindow
	}
	if rc.maxBody <= 0 {
		rc.maxBody = DefaultMaxBodyBytes
	}
	if rc.maxBatch <= 0 {
		rc.maxBatch = DefaultMandrillMaxBodyBytes
	}
	if rc.log == nil {
		rc.log = slog.New(slog.DiscardHandler)
	}
	rc.log = rc.log.With("component", "webhooks")
	if rc.now == nil {
		rc.now = time.Now
	}
	rates := opts.Rates
	if rates == nil {
		rates = optin.NewDomainRates(rc.now)
	}
	var err error
	if rc.events, err = newEventCounter(opts.Metrics); err != nil {
		return nil, err
	}
	if rc.complaint, err = newComplaints(rates, opts.Metrics, rc.log, rc.now); err != nil {
		return nil, err
	}
	rc.mux.HandleFunc("/webhooks/mailchimp/{secret}", rc.serveMailchimp)
	rc.mux.HandleFunc("/webhooks/mandrill", rc.serveMandrill)
	rc.mux.HandleFunc("/webhooks/crm", rc.serveCRM)
	rc.mux.HandleFunc("/webhooks/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such webhook: the receivers are /webhooks/mailchimp/SECRET, /webhooks/mandrill and /webhooks/crm")
	})
	return rc, nil
}

// Handler serves the routes under /webhooks/. Each request has
// Timeout to be applied: a sender that waits longer gives up and
// retries anyway (Mailchimp after 10 seconds), so a store that is slow
// gets a 503 in time instead.
func (rc *Receiver) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), rc.timeout)
		defer cancel()
		rc.mux.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Outcomes of one event, as optinproxy_webhook_events_total counts them.
const (
	outcomeApplied   = "applied"   // recorded
	outcomeUnchanged = "unchanged" // applied, but the ledger had it or newer
	outcomeDuplicate = "duplicate" // a delivery seen before: not applied again
	outcomeIgnored   = "ignored"   // a type or list this proxy does not act on
	outcomeRejected  = "rejected"  // bad secret or signature
	outcomeInvalid   = "invalid"   // malformed
	outcomeFailed    = "failed"    // the store failed: the sender retries
	outcomeErased    = "erased"    // a grant for an erased address: refused, answered 200
)

var (
	sources  = []string{"mailchimp", "mandrill", "crm"}
	outcomes = []string{outcomeApplied, outcomeUnchanged, outcomeDuplicate, outcomeIgnored, outcomeRejected, outcomeInvalid, outcomeFailed, outcomeErased}
)

func newEventCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "optinproxy_webhook_events_total",
		Help: "Inbound webhook events by sender (mailchimp, mandrill, crm) and outcome (applied, unchanged, duplicate, ignored, rejected, invalid, failed, erased).",
	}, []string{"source", "outcome"})
	for _, s := range sources {
		for _, o := range outcomes {
			c.WithLabelValues(s, o)
		}
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (rc *Receiver) count(source, outcome string) { rc.events.WithLabelValues(source, outcome).Inc() }

// outcomeOf names what became of an event the ledger took.
func outcomeOf(applied bool) string {
	if applied {
		return outcomeApplied
	}
	return outcomeUnchanged
}
