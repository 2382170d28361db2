package unsubscribe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
)

//go:embed templates/page.html templates/confirm.html templates/page.css
var templateFS embed.FS

var (
	pageTemplate = template.Must(template.ParseFS(templateFS, "templates/page.html", "templates/confirm.html"))
	pageStyle    = mustRead("templates/page.css")
	// pageCSP allows nothing but the page's own style, and form posts
	// to the page itself.
	pageCSP = PageCSP(pageStyle)
)

// maxFormBytes caps a POST body: a choice, or RFC 8058's one field, in
// either form encoding.
const maxFormBytes = 4 << 10

// Withdrawer records withdrawals and suppressions; *optin.Ledger is one.
// Store is read to learn whether a withdrawal is already recorded, so
// that a repeated POST records nothing new. Purposes, those in force at
// each request, name the purpose of a link on its page (its description,
// else its name); a link whose purpose is no longer configured offers
// "all marketing" only.
type Withdrawer interface {
	Withdraw(ctx context.Context, a optin.Address, purpose string, cc optin.ConsentChange) (optin.Result, error)
	Suppress(ctx context.Context, a optin.Address, reason optin.SuppressionReason, actor string) (optin.Result, error)
	Store() optin.Store
	Purposes() optin.Purposes
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Tokens *Tokens
	Ledger Withdrawer
	// Language is the pages' language when the browser asks for neither
	// Dutch nor English: "nl" (the default) or "en".
	Language string
	Logger   *slog.Logger
	// Metrics registers optinproxy_unsubscribes_total; nil registers
	// nowhere.
	Metrics prometheus.Registerer
	// Now is the time of a withdrawal; time.Now when nil.
	Now func() time.Time
}

// Handler serves GET and POST /u/TOKEN, and applies the tokens of the
// mailto address through Apply. Safe for concurrent use.
type Handler struct {
	pageSettings
	tokens *Tokens
	ledger Withdrawer
	count  *prometheus.CounterVec
	mux    *http.ServeMux
}

// pageSettings are what the /u/ and /confirm/ pages share: the language
// picker, the scoped logger and the clock.
type pageSettings struct {
	lang languagePicker
	log  *slog.Logger
	now  func() time.Time
}

// newPageSettings checks language ("" is Dutch) and fills in the defaults
// of logger (discard) and now (time.Now).
func newPageSettings(language string, logger *slog.Logger, now func() time.Time, component string) (pageSettings, error) {
	if language == "" {
		language = Dutch
	}
	if _, ok := texts[language]; !ok {
		return pageSettings{}, fmt.Errorf("unsubscribe: language %q, want nl or en", language)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return pageSettings{lang: newLanguagePicker(language), log: logger.With("component", component), now: now}, nil
}

// NewHandler validates o and builds the handler, which expects to be
// mounted at /u/.
func NewHandler(o HandlerOptions) (*Handler, error) {
	switch {
	case o.Tokens == nil:
		return nil, errors.New("unsubscribe: handler without tokens")
	case o.Ledger == nil:
		return nil, errors.New("unsubscribe: handler without a ledger")
	}
	ps, err := newPageSettings(o.Language, o.Logger, o.Now, "unsubscribe")
	if err != nil {
		return nil, err
	}
	count, err := newCounter(o.Metrics, o.Ledger.Purposes())
	if err != nil {
		return nil, err
	}
	h := &Handler{pageSettings: ps, tokens: o.Tokens, ledger: o.Ledger, count: count, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /u/{token}", h.ask)
	h.mux.HandleFunc("POST /u/{token}", h.confirm)
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// page is what the template shows.
type page struct {
	T       text
	C       confirmText // on the /confirm/ pages
	Kind    string      // ask, done, confirm, confirmed, or problem
	Title   string
	Message string
	Purpose string // the description; "" when the purpose is unknown
	All     bool
	Action  string
	Style   template.CSS
}

// ask shows what the link would do and changes nothing: mail scanners
// and link previews follow links.
func (h *Handler) ask(w http.ResponseWriter, r *http.Request) {
	t := h.lang.pick(r)
	c, err := h.tokens.Parse(r.PathValue("token"))
	if err != nil {
		h.badToken(w, t, err)
		return
	}
	h.render(w, http.StatusOK, page{T: t, Kind: "ask", Title: t.Title, Purpose: h.describe(c.Purpose), Action: r.URL.RequestURI()})
}

// confirm withdraws, from the page's form or from a mail client's RFC
// 8058 one-click POST. The token is the only credential.
func (h *Handler) confirm(w http.ResponseWriter, r *http.Request) {
	t := h.lang.pick(r)
	c, err := h.tokens.Parse(r.PathValue("token"))
	if err != nil {
		h.badToken(w, t, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseMultipartForm(maxFormBytes); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		h.problem(w, t, http.StatusBadRequest, t.FormTitle, t.FormText)
		return
	}
	channel, all, ok := h.choice(r, c)
	if !ok {
		h.problem(w, t, http.StatusBadRequest, t.FormTitle, t.FormText)
		return
	}
	ev := RequestEvidence(r)
	if err := h.withdraw(r.Context(), c, all, channel, ev); err != nil {
		h.log.Error("unsubscribe not recorded", "purpose", c.Purpose, "subject", c.Subject, "channel", channel, "err", err)
		h.problem(w, t, http.StatusServiceUnavailable, t.DownTitle, t.DownText)
		return
	}
	h.render(w, http.StatusOK, page{T: t, Kind: "done", Title: t.DoneTitle, Purpose: h.describe(c.Purpose), All: all})
}

// choice reads what the POST asks: RFC 8058's List-Unsubscribe=One-Click
// withdraws the link's purpose; the page's form says this or all. A link
// whose purpose is gone from the configuration means all.
func (h *Handler) choice(r *http.Request, c Claim) (channel string, all, ok bool) {
	_, known := h.ledger.Purposes()[c.Purpose]
	if r.PostForm.Get("List-Unsubscribe") == "One-Click" {
		return ChannelOneClick, !known, true
	}
	switch r.PostForm.Get("choice") {
	case "this":
		return ChannelPage, !known, true
	case "all":
		return ChannelPage, true, true
	}
	return "", false, false
}

// describe names a purpose for a page: its description, else its name;
// "" when it is not configured.
func (h *Handler) describe(purpose string) string { return describe(h.ledger.Purposes(), purpose) }

func describe(purposes optin.Purposes, purpose string) string {
	p, ok := purposes[purpose]
	switch {
	case !ok:
		return ""
	case p.Description != "":
		return p.Description
	}
	return p.Name
}

func (h *Handler) badToken(w http.ResponseWriter, t text, err error) {
	h.log.Info("bad unsubscribe link", "err", err)
	h.problem(w, t, http.StatusBadRequest, t.BadTitle, t.BadText)
}

func (h *Handler) problem(w http.ResponseWriter, t text, status int, title, msg string) {
	h.render(w, status, page{T: t, Kind: "problem", Title: title, Message: msg})
}

func (h *Handler) render(w http.ResponseWriter, status int, p page) { render(w, h.log, status, p) }

// render writes a page of either handler with the headers they share.
func render(w http.ResponseWriter, log *slog.Logger, status int, p page) {
	p.Style = template.CSS(pageStyle)
	var b bytes.Buffer
	if err := pageTemplate.ExecuteTemplate(&b, "page", p); err != nil {
		log.Error("page", "kind", p.Kind, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	SetPageHeaders(w.Header(), pageCSP)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func mustRead(name string) string {
	b, err := templateFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func sha256Sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
