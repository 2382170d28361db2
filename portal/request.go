package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"optinproxy/optin"
	"optinproxy/unsubscribe"
)

// maxFormBytes caps a POST body: an address or two and a few fields.
const maxFormBytes = 4 << 10

// sendTimeout bounds one link's lookup and mail.
const sendTimeout = time.Minute

// requestForm is GET /p: the form that asks for an address, or, after
// a request (?sent), the answer every request gets.
func (h *Handler) requestForm(w http.ResponseWriter, r *http.Request) {
	t := h.text(r)
	if r.URL.Query().Has("sent") {
		h.render(w, r, http.StatusOK, page{T: t, Kind: "sent", Title: t.SentTitle, Sent: fmt.Sprintf(t.SentText, t.lasting(h.o.LinkTTL))})
		return
	}
	h.showRequestForm(w, r, http.StatusOK, "", "")
}

// showRequestForm answers the form, with a problem of what was typed
// (value) when there is one.
func (h *Handler) showRequestForm(w http.ResponseWriter, r *http.Request, status int, problem, value string) {
	t := h.text(r)
	cookie, err := h.ensureCookie(w, r)
	if err != nil {
		h.log.Error("portal cookie", "err", err)
		h.problem(w, r, http.StatusInternalServerError, t.DownTitle, t.DownText, false)
		return
	}
	h.render(w, r, status, page{T: t, Kind: "request", Title: t.RequestTitle, CSRF: h.csrf.token(cookie, ""), Error: problem, Value: value})
}

// requestLink is POST /p. Whether the address is known or not, the
// answer is the same and comes as fast: the lookup and the mail happen
// after it, off the request path (send).
func (h *Handler) requestLink(w http.ResponseWriter, r *http.Request) {
	t := h.text(r)
	if !h.parseForm(w, r) {
		return
	}
	if !h.checkPost(r, "") {
		h.refuse(w, r)
		return
	}
	typed := r.PostForm.Get("email")
	addr, err := optin.ParseAddress(typed)
	if err != nil {
		h.showRequestForm(w, r, http.StatusBadRequest, t.BadAddress, truncate(typed, 254))
		return
	}
	h.count.WithLabelValues("request").Inc()
	if !h.limits.allow(unsubscribe.RequestEvidence(r).IP, addr.Hash(), h.o.Now()) {
		h.count.WithLabelValues("limited").Inc()
		h.log.Info("portal link request over the limit", "subject", addr)
		h.problem(w, r, http.StatusTooManyRequests, t.LimitTitle, t.LimitText, false)
		return
	}
	h.dispatch(addr, t.Lang)
	http.Redirect(w, r, "/p"+queryWith(langQuery(r), "sent"), http.StatusSeeOther)
}

// dispatch starts the sending of a link, unless maxSending are under way
// or the handler is closed: then the request is dropped, and logged.
func (h *Handler) dispatch(a optin.Address, lang string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		h.log.Warn("portal link not sent: shutting down", "subject", a)
		return
	}
	select {
	case h.sending <- struct{}{}:
	default:
		h.log.Warn("portal link not sent: too many at once", "subject", a)
		return
	}
	h.wg.Go(func() {
		defer func() { <-h.sending }()
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		defer cancel()
		h.send(ctx, a, lang)
	})
}

// send mails a link to a when the ledger knows it, and nothing else.
// Only the log says which: it is the operator's, not the requester's.
func (h *Handler) send(ctx context.Context, a optin.Address, lang string) {
	v, err := h.o.Ledger.Store().Subject(ctx, a, 0)
	switch {
	case errors.Is(err, optin.ErrNotFound):
		h.log.Info("portal link not sent: nothing stored", "subject", a)
		return
	case err != nil:
		h.log.Error("portal link not sent: store", "subject", a, "err", err)
		return
	case erasedView(v):
		h.log.Info("portal link not sent: erased", "subject", a)
		return
	case h.o.Mailer == nil:
		h.log.Warn("portal link not sent: no mailer configured", "subject", a)
		return
	}
	link, expires := h.Link(a)
	if err := h.o.Mailer.SendPortalLink(ctx, a, link, expires, lang); err != nil {
		h.log.Error("portal link not sent: mail", "subject", a, "err", err)
		return
	}
	h.log.Info("portal link sent", "subject", a)
}

// parseForm reads a POST's form, at most maxFormBytes; a body that does
// not parse gets the form problem page.
func (h *Handler) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		t := h.text(r)
		h.problem(w, r, http.StatusBadRequest, t.FormTitle, t.FormText, false)
		return false
	}
	return true
}

// refuse answers a POST from another site or without its CSRF token:
// 403, nothing changed.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request) {
	t := h.text(r)
	h.count.WithLabelValues("refused").Inc()
	h.log.Info("portal form refused: cross-site or without its CSRF token", "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
	h.problem(w, r, http.StatusForbidden, t.ForbiddenTitle, t.ForbiddenText, false)
}

// queryWith adds a key (and value) to a query string that is "" or
// starts with "?".
func queryWith(q string, kv string) string {
	if q == "" {
		return "?" + kv
	}
	return q + "&" + kv
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
