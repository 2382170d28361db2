// Package admin is the JSON API under /api/v1: subjects,
// consents, suppressions, the event log, imports and exports, for
// administrators and CRMs. The command line is its client. Of the project
// it imports optin and internal/httpjson; cmd mounts its Handler on the
// HTTP listener.
package admin

import (
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"optinproxy/optin"
)

// Scopes a token may hold.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeErase = "erase"
)

// Options configure New.
type Options struct {
	Ledger *optin.Ledger
	Tokens []Token
	Logger *slog.Logger
	// MaxBodyBytes bounds the request body of every route (default
	// 1 MiB) but the import; MaxImportBytes bounds a CSV import
	// (default 256 MiB).
	MaxBodyBytes   int64
	MaxImportBytes int64
	// LongTimeout is how long an import or a verify may take to read
	// its request, and then again to write its answer (default 15
	// minutes). They outlast the HTTP server's own read and write
	// timeouts, so the API moves the connection's deadlines for them
	// once the token is checked: strangers keep the server's short ones.
	LongTimeout time.Duration
	// Outbox, when set, serves /api/v1/outbox; MailchimpSync, when set,
	// /api/v1/sync/mailchimp. Without them those answer 409.
	Outbox        Outbox
	MailchimpSync Syncer
	// PortalLink, when set, serves .../portal-link; without it that
	// answers 409.
	PortalLink PortalLinker
	Now        func() time.Time
	// PolicyVersion is policy.current_version, for the outdated-policy
	// report; Processing is the configuration the record of processing
	// reports (reports.go, processing.go).
	PolicyVersion string
	Processing    Processing
	// Roles and Monitor are the relay's role addresses (nil: the
	// built-in list) and policy.mode, for the list check (check.go);
	// MaxCheckBytes bounds its body (default 8 MiB: 10,000 addresses).
	Roles         *optin.RoleAddresses
	Monitor       bool
	MaxCheckBytes int64
	// NotifyErasure keeps an erased address for the outbound targets
	// (optin.ErasureRequest.Notify): set when any is configured.
	NotifyErasure bool
}

// API serves /api/v1. Safe for concurrent use.
type API struct {
	ledger *optin.Ledger
	store  optin.Store
	tokens []Token
	log    *slog.Logger
	opts   Options
	mux    *http.ServeMux
	// roles start as opts.Roles; SetRoles replaces them.
	roles atomic.Pointer[optin.RoleAddresses]
}

// route is one endpoint: the table registers the handlers and is checked
// against the OpenAPI document by a test.
type route struct {
	method, path, scope string
	handle              func(a *API, w http.ResponseWriter, r *http.Request, p principal)
}

var routes = []route{
	{"GET", "/api/v1/subjects/{email}", ScopeRead, (*API).getSubject},
	{"PUT", "/api/v1/subjects/{email}/consents/{purpose}", ScopeWrite, (*API).putConsent},
	{"DELETE", "/api/v1/subjects/{email}/consents/{purpose}", ScopeWrite, (*API).deleteConsent},
	{"GET", "/api/v1/subjects/{email}/export", ScopeRead, (*API).exportSubject},
	{"POST", "/api/v1/subjects/{email}/erasure", ScopeErase, (*API).postErasure},
	{"DELETE", "/api/v1/subjects/{email}/erasure", ScopeErase, (*API).cancelErasure},
	{"POST", "/api/v1/subjects/{email}/portal-link", ScopeWrite, (*API).portalLink},
	{"GET", "/api/v1/events", ScopeRead, (*API).listEvents},
	{"GET", "/api/v1/verify", ScopeRead, (*API).verify},
	{"GET", "/api/v1/suppressions", ScopeRead, (*API).listSuppressions},
	{"POST", "/api/v1/suppressions", ScopeWrite, (*API).addSuppression},
	{"DELETE", "/api/v1/suppressions/{email}", ScopeWrite, (*API).removeSuppression},
	{"POST", "/api/v1/imports", ScopeWrite, (*API).importCSV},
	{"GET", "/api/v1/reports/no-proof", ScopeRead, (*API).reportNoProof},
	{"GET", "/api/v1/reports/no-basis", ScopeRead, (*API).reportNoBasis},
	{"GET", "/api/v1/reports/expiring", ScopeRead, (*API).reportExpiring},
	{"GET", "/api/v1/reports/outdated-policy", ScopeRead, (*API).reportOutdatedPolicy},
	{"GET", "/api/v1/reports/processing", ScopeRead, (*API).reportProcessing},
	{"GET", "/api/v1/reports/affected", ScopeRead, (*API).reportAffected},
	{"POST", "/api/v1/check", ScopeRead, (*API).check},
	{"GET", "/api/v1/outbox/{status}", ScopeRead, (*API).listOutbox},
	{"POST", "/api/v1/outbox/dead/{id}/replay", ScopeWrite, (*API).replayDead},
	{"POST", "/api/v1/sync/mailchimp", ScopeWrite, (*API).syncMailchimp},
}

// New validates opts and builds the API.
func New(opts Options) (*API, error) {
	if opts.Ledger == nil {
		return nil, errors.New("admin: no ledger")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxImportBytes <= 0 {
		opts.MaxImportBytes = 256 << 20
	}
	if opts.MaxCheckBytes <= 0 {
		opts.MaxCheckBytes = 8 << 20
	}
	if opts.Roles == nil {
		roles, err := optin.NewRoleAddresses(nil, nil)
		if err != nil {
			return nil, err
		}
		opts.Roles = roles
	}
	if opts.LongTimeout <= 0 {
		opts.LongTimeout = 15 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := checkTokens(opts.Tokens); err != nil {
		return nil, err
	}
	a := &API{ledger: opts.Ledger, store: opts.Ledger.Store(), tokens: opts.Tokens,
		log: opts.Logger.With("component", "admin"), opts: opts, mux: http.NewServeMux()}
	a.roles.Store(opts.Roles)
	for _, rt := range routes {
		a.mux.Handle(rt.method+" "+rt.path, a.guard(rt))
	}
	a.mux.HandleFunc("GET /api/v1/openapi.json", serveOpenAPI)
	a.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return a, nil
}

// SetRoles puts the role addresses the list check decides with in force
// (a configuration reload), so that it keeps deciding as the relay does.
// Safe for concurrent use.
func (a *API) SetRoles(r *optin.RoleAddresses) { a.roles.Store(r) }

// Handler serves everything under /api/v1/.
func (a *API) Handler() http.Handler { return a.mux }

// guard authenticates, checks the scope and bounds the body before the
// handler runs.
func (a *API) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="optinproxy"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
			return
		}
		if !p.has(rt.scope) {
			writeError(w, http.StatusForbidden, "forbidden", "token "+p.name+" lacks the "+rt.scope+" scope")
			return
		}
		limit := a.bodyLimit(rt)
		if r.ContentLength > limit {
			// Refused unread: the client learns the limit at once.
			tooLarge(w, limit, "")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if rt.long() {
			a.extendDeadlines(w)
		}
		rt.handle(a, w, r, p)
	})
}

// long tells the routes that may outlast the server's timeouts: an
// import reads up to MaxImportBytes and applies it, a verify reads every
// subject, a Mailchimp sync pages through a whole audience.
func (rt route) long() bool {
	return rt.path == "/api/v1/imports" || rt.path == "/api/v1/verify" || rt.path == "/api/v1/sync/mailchimp"
}

func (a *API) bodyLimit(rt route) int64 {
	switch rt.path {
	case "/api/v1/imports":
		return a.opts.MaxImportBytes
	case "/api/v1/check":
		return a.opts.MaxCheckBytes
	}
	return a.opts.MaxBodyBytes
}

// extendDeadlines gives the request LongTimeout from now to be read, and
// as long again after that to be answered: an import applies its last
// rows after the last byte, and a body that came too late still gets
// its 408. Deadlines are wall-clock times of the connection, so this
// uses the real clock, not opts.Now. A writer without deadlines (not a
// network connection) keeps none.
func (a *API) extendDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	read := time.Now().Add(a.opts.LongTimeout)
	if err := rc.SetReadDeadline(read); err == nil {
		rc.SetWriteDeadline(read.Add(a.opts.LongTimeout))
	}
}
