package unsubscribe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
)

// Confirmer records the confirmation of a double opt-in; *optin.Ledger is
// one. Store is read for the pending record the link confirms; Purposes,
// those in force at each request, name a link's purpose on its page.
type Confirmer interface {
	Grant(ctx context.Context, a optin.Address, purpose string, cc optin.ConsentChange) (optin.Result, error)
	Store() optin.Store
	Purposes() optin.Purposes
}

// ConfirmOptions configure NewConfirmHandler.
type ConfirmOptions struct {
	Tokens *Tokens
	Ledger Confirmer
	// Language is as HandlerOptions.Language.
	Language string
	// Expiry is how long a link works after the request it confirms was
	// recorded, its token's Issued (policy.pending_expiry).
	Expiry time.Duration
	Logger *slog.Logger
	// Metrics registers optinproxy_confirmations_total; nil registers
	// nowhere.
	Metrics prometheus.Registerer
	// Now is the time of a confirmation and of the expiry check;
	// time.Now when nil.
	Now func() time.Time
}

// ConfirmHandler serves GET and POST /confirm/TOKEN, the link of a double
// opt-in mail: GET names the purpose and changes nothing, POST
// turns the pending record into a granted one with the confirmation's
// evidence. The token is the only credential, as for /u/. Safe for
// concurrent use.
type ConfirmHandler struct {
	pageSettings
	tokens *Tokens
	ledger Confirmer
	expiry time.Duration
	count  *prometheus.CounterVec
	mux    *http.ServeMux
}

// confirmActor names the confirmation page in the events it records.
const confirmActor = "confirm"

// NewConfirmHandler validates o and builds the handler, which expects to
// be mounted at /confirm/.
func NewConfirmHandler(o ConfirmOptions) (*ConfirmHandler, error) {
	switch {
	case o.Tokens == nil:
		return nil, errors.New("unsubscribe: confirm handler without tokens")
	case o.Ledger == nil:
		return nil, errors.New("unsubscribe: confirm handler without a ledger")
	case o.Expiry <= 0:
		return nil, errors.New("unsubscribe: confirm handler without an expiry")
	}
	ps, err := newPageSettings(o.Language, o.Logger, o.Now, "confirm")
	if err != nil {
		return nil, err
	}
	count := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "optinproxy_confirmations_total",
		Help: "Double opt-in confirmations recorded from the /confirm/ page, by purpose; repeats are not counted.",
	}, []string{"purpose"})
	for _, p := range o.Ledger.Purposes() {
		if p.DoubleOptIn {
			count.WithLabelValues(p.Name)
		}
	}
	if o.Metrics != nil {
		if err := o.Metrics.Register(count); err != nil {
			return nil, err
		}
	}
	h := &ConfirmHandler{pageSettings: ps, tokens: o.Tokens, ledger: o.Ledger,
		expiry: o.Expiry, count: count, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /confirm/{token}", h.ask)
	h.mux.HandleFunc("POST /confirm/{token}", h.confirm)
	return h, nil
}

func (h *ConfirmHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// ask names the purpose and offers the button; it reads nothing from the
// store and changes nothing, for mail scanners follow links.
func (h *ConfirmHandler) ask(w http.ResponseWriter, r *http.Request) {
	p, c, ok := h.claim(w, r)
	if !ok {
		return
	}
	p.Kind, p.Title, p.Purpose, p.Action = "confirm", p.C.Title, describe(h.ledger.Purposes(), c.Purpose), r.URL.RequestURI()
	render(w, h.log, http.StatusOK, p)
}

// confirm grants, when the record the link was made for is still
// pending. A repeat says so and records nothing.
func (h *ConfirmHandler) confirm(w http.ResponseWriter, r *http.Request) {
	p, c, ok := h.claim(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	p.Purpose = describe(h.ledger.Purposes(), c.Purpose)
	rec, err := h.record(ctx, c)
	if err != nil {
		h.log.Error("confirmation not recorded", "purpose", c.Purpose, "subject", c.Subject, "err", err)
		h.problem(w, p, http.StatusServiceUnavailable, p.T.DownTitle, p.C.DownText)
		return
	}
	switch {
	case rec == nil || rec.Status == optin.StatusWithdrawn:
		h.problem(w, p, http.StatusGone, p.C.GoneTitle, p.C.GoneText)
		return
	case rec.Status == optin.StatusExpired:
		h.problem(w, p, http.StatusGone, p.C.ExpiredTitle, p.C.ExpiredText)
		return
	case rec.Status == optin.StatusGranted:
		h.done(w, p, true)
		return
	}
	policy := rec.PolicyVersion // the version the subject signed up under
	ev := optin.Evidence{IP: remoteIP(r), UserAgent: truncate(r.UserAgent(), 256), PolicyVersion: policy,
		Text:  p.C.Ask + " " + p.Purpose + " [" + p.C.Button + "]",
		Extra: map[string]string{"pending_event": rec.EventID, "lang": p.T.Lang}}
	// The grant must order after the request it confirms, whose time may
	// be a CRM's, a little ahead of this clock.
	at := h.now()
	if !at.After(rec.UpdatedAt) {
		at = rec.UpdatedAt.Add(time.Nanosecond)
	}
	res, err := h.ledger.Grant(ctx, c.Subject, c.Purpose, optin.ConsentChange{
		Source: optin.SourceDoubleOptIn, Actor: confirmActor, Evidence: ev, At: at})
	if err != nil {
		h.log.Error("confirmation not recorded", "purpose", c.Purpose, "subject", c.Subject, "err", err)
		h.problem(w, p, http.StatusServiceUnavailable, p.T.DownTitle, p.C.DownText)
		return
	}
	if !res.Applied {
		// A newer change won (a confirmation a moment earlier, a
		// withdrawal): say what stands.
		if res.Consent != nil && res.Consent.Status == optin.StatusGranted {
			h.done(w, p, true)
		} else {
			h.problem(w, p, http.StatusGone, p.C.GoneTitle, p.C.GoneText)
		}
		return
	}
	h.count.WithLabelValues(c.Purpose).Inc()
	h.log.Info("double opt-in confirmed", "purpose", c.Purpose, "subject", c.Subject, "event_id", res.Event.ID, "pending_event", rec.EventID)
	h.done(w, p, false)
}

// claim starts the page in the request's language, opens the link's
// token and checks what needs no store: the token is ours and of the
// confirm kind, its purpose is configured, it has not expired. Otherwise
// it answers and returns false.
func (h *ConfirmHandler) claim(w http.ResponseWriter, r *http.Request) (page, Claim, bool) {
	t := h.lang.pick(r)
	p := page{T: t, C: confirmTexts[t.Lang]}
	c, err := h.tokens.ParseKind(KindConfirm, r.PathValue("token"))
	if err != nil {
		h.log.Info("bad confirmation link", "err", err)
		h.problem(w, p, http.StatusBadRequest, p.T.BadTitle, p.C.BadText)
		return p, Claim{}, false
	}
	if _, ok := h.ledger.Purposes()[c.Purpose]; !ok {
		h.problem(w, p, http.StatusGone, p.C.GoneTitle, p.C.GoneText)
		return p, Claim{}, false
	}
	if !h.now().Before(c.Issued.Add(h.expiry)) {
		h.problem(w, p, http.StatusGone, p.C.ExpiredTitle, p.C.ExpiredText)
		return p, Claim{}, false
	}
	return p, c, true
}

// record reads c's record for its purpose; nil when there is none.
func (h *ConfirmHandler) record(ctx context.Context, c Claim) (*optin.Consent, error) {
	sts, err := h.ledger.Store().Lookup(ctx, optin.LookupQuery{Purpose: c.Purpose, Addresses: []optin.Address{c.Subject}})
	if err != nil {
		return nil, err
	}
	if len(sts) != 1 {
		return nil, fmt.Errorf("unsubscribe: store answered %d standings for one address", len(sts))
	}
	return sts[0].Consent, nil
}

func (h *ConfirmHandler) done(w http.ResponseWriter, p page, already bool) {
	p.Kind, p.Title, p.Message = "confirmed", p.C.DoneTitle, p.C.Done
	if already {
		p.Title, p.Message = p.C.AlreadyTitle, p.C.Already
	}
	render(w, h.log, http.StatusOK, p)
}

func (h *ConfirmHandler) problem(w http.ResponseWriter, p page, status int, title, msg string) {
	p.Kind, p.Title, p.Message = "problem", title, msg
	render(w, h.log, status, p)
}
