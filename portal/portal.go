// Package portal is the subject's personal data portal: /p, a
// form that mails a temporary link without telling whether the address is
// known, and /p/TOKEN, where the subject sees every purpose with its state
// and history, grants or withdraws each, corrects the address, downloads
// everything stored (internal/export) and asks for erasure. Pages are
// server-rendered, in Dutch and English, on the unsubscribe pages' frame;
// every form carries a CSRF token. It imports optin, unsubscribe (the
// tokens and the page frame) and internal/export.
package portal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
	"optinproxy/unsubscribe"
)

// Ledger is what the portal changes and reads; *optin.Ledger is one.
type Ledger interface {
	Grant(ctx context.Context, a optin.Address, purpose string, cc optin.ConsentChange) (optin.Result, error)
	Withdraw(ctx context.Context, a optin.Address, purpose string, cc optin.ConsentChange) (optin.Result, error)
	Move(ctx context.Context, from, to optin.Address, actor string, at time.Time) (optin.MoveResult, error)
	Store() optin.Store
	Purposes() optin.Purposes
}

// Mailer sends a portal link to the address it is for. It is called off
// the request path, once per link, only for an address the ledger knows,
// with a context that ends after a minute.
type Mailer interface {
	SendPortalLink(ctx context.Context, to optin.Address, link string, expires time.Time, lang string) error
}

// Eraser carries out a subject's erasure now; actor is "subject".
type Eraser interface {
	Erase(ctx context.Context, a optin.Address, actor string) error
}

// Actor names the subject in the events the portal records.
const Actor = "subject"

// Options configure New.
type Options struct {
	Tokens *unsubscribe.Tokens
	Ledger Ledger
	// PublicURL is the base of the links (http.public_url); when it is
	// https the CSRF cookie is Secure and __Host- prefixed.
	PublicURL string
	// LinkTTL is how long a link works after it was made
	// (policy.portal_link_ttl); default 24h.
	LinkTTL time.Duration
	// Secret keys the CSRF tokens; at least 16 bytes, the same on every
	// instance behind one address (the unsubscribe secret does).
	Secret []byte
	// Mailer sends the links asked for at /p; nil sends none (each
	// request is logged as not sent).
	Mailer Mailer
	// Eraser carries out erasure; nil leaves the erasure form out.
	Eraser Eraser
	// PolicyVersion is the privacy-policy version in the evidence of
	// the portal's grants and withdrawals.
	PolicyVersion string
	// Language is the pages' language when the browser asks for neither
	// Dutch nor English: "nl" (the default) or "en".
	Language string
	// Limits bound the link requests at /p; zero fields take defaults.
	Limits Limits
	Logger *slog.Logger
	// Metrics registers optinproxy_portal_actions_total; nil registers
	// nowhere.
	Metrics prometheus.Registerer
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// maxSending bounds the links being looked up and mailed at once; a
// request beyond it is dropped (and logged), its answer unchanged.
const maxSending = 16

// Handler serves /p and /p/. Safe for concurrent use. Close waits for
// the mailing of links still under way.
type Handler struct {
	o       Options
	log     *slog.Logger
	langs   unsubscribe.Languages
	csrf    csrfKey
	secure  bool
	base    string // PublicURL without its trailing slash
	limits  *limits
	count   *prometheus.CounterVec
	mux     *http.ServeMux
	origins *http.CrossOriginProtection

	sending chan struct{} // a slot per link being sent
	mu      sync.Mutex    // guards closed and wg.Add against Close
	closed  bool
	wg      sync.WaitGroup
}

// New validates o and builds the handler, which expects to be mounted at
// /p and /p/.
func New(o Options) (*Handler, error) {
	switch {
	case o.Tokens == nil:
		return nil, errors.New("portal: no tokens")
	case o.Ledger == nil:
		return nil, errors.New("portal: no ledger")
	case len(o.Secret) < 16:
		return nil, fmt.Errorf("portal: secret of %d bytes, want at least 16", len(o.Secret))
	}
	u, err := url.Parse(o.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("portal: public URL %q is not an http or https URL", o.PublicURL)
	}
	langs, err := unsubscribe.NewLanguages(o.Language)
	if err != nil {
		return nil, err
	}
	if o.LinkTTL <= 0 {
		o.LinkTTL = 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	count, err := newCounter(o.Metrics)
	if err != nil {
		return nil, err
	}
	origins := http.NewCrossOriginProtection()
	// Behind a proxy that rewrites Host, the public origin is still ours.
	if err := origins.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
		return nil, fmt.Errorf("portal: public URL: %w", err)
	}
	h := &Handler{o: o, log: o.Logger.With("component", "portal"), langs: langs, csrf: newCSRFKey(o.Secret),
		secure: u.Scheme == "https", base: strings.TrimRight(o.PublicURL, "/"), limits: newLimits(o.Limits),
		count: count, mux: http.NewServeMux(), origins: origins,
		sending: make(chan struct{}, maxSending)}
	h.mux.HandleFunc("GET /p", h.requestForm)
	h.mux.HandleFunc("POST /p", h.requestLink)
	h.mux.HandleFunc("GET /p/{token}", h.show)
	h.mux.HandleFunc("GET /p/{token}/export", h.download)
	h.mux.HandleFunc("POST /p/{token}/consent", h.changeConsent)
	h.mux.HandleFunc("POST /p/{token}/address", h.changeAddress)
	h.mux.HandleFunc("POST /p/{token}/erasure", h.erase)
	h.mux.HandleFunc("/p/", h.notFound)
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close waits for the links being looked up and mailed, each bounded by
// sendTimeout; requests at /p after it mail nothing. Call it after the
// HTTP server's shutdown and before the store closes.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.wg.Wait()
}

// Link makes a portal link for a: its URL, and when it stops working.
// It does not check that anything is stored about a.
func (h *Handler) Link(a optin.Address) (string, time.Time) {
	token, expires := h.issue(a)
	return h.base + "/p/" + token, expires
}

// issue makes the token of a portal link for a, and its end.
func (h *Handler) issue(a optin.Address) (string, time.Time) {
	issued := h.o.Now().UTC().Truncate(time.Second) // what the token keeps
	token := h.o.Tokens.IssueKind(unsubscribe.KindPortal, unsubscribe.Claim{Subject: a, Purpose: "portal", Issued: issued})
	return token, issued.Add(h.o.LinkTTL)
}
