package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"optinproxy/internal/export"
	"optinproxy/optin"
	"optinproxy/unsubscribe"
)

// subject is what one request of a portal link works on: the link's
// token and claim, and everything stored about its address.
type subject struct {
	token string
	claim unsubscribe.Claim
	ex    *export.Export // nil when nothing is stored
}

// open checks the link of a /p/TOKEN request and reads its subject. It
// answers the request itself and returns false when the link is bad
// (400), has expired or its address was moved away after it was made
// (410), or the store failed (503). A link whose address holds nothing
// (any more) opens with a nil ex.
func (h *Handler) open(w http.ResponseWriter, r *http.Request) (subject, bool) {
	t := h.text(r)
	token := r.PathValue("token")
	c, err := h.o.Tokens.ParseKind(unsubscribe.KindPortal, token)
	if err != nil {
		h.log.Info("bad portal link", "err", err)
		h.problem(w, r, http.StatusBadRequest, t.BadTitle, t.BadText, true)
		return subject{}, false
	}
	if !h.o.Now().Before(c.Issued.Add(h.o.LinkTTL)) {
		h.problem(w, r, http.StatusGone, t.ExpiredTitle, t.ExpiredText, true)
		return subject{}, false
	}
	ex, err := export.Collect(r.Context(), h.o.Ledger.Store(), c.Subject, h.o.Now())
	if errors.Is(err, optin.ErrNotFound) {
		return subject{token: token, claim: c}, true
	}
	if err != nil {
		h.down(w, r, "reading a portal's subject", c.Subject, err)
		return subject{}, false
	}
	if movedAway(ex.Events, c.Issued) {
		h.problem(w, r, http.StatusGone, t.MovedTitle, t.MovedText, true)
		return subject{}, false
	}
	return subject{token: token, claim: c, ex: ex}, true
}

// erased reports whether the subject's erasure was carried out: what is
// left of it is the erased suppression.
func (s subject) erased() bool {
	return s.ex != nil && slices.ContainsFunc(s.ex.Suppressions, func(x export.Suppression) bool { return x.Reason == optin.SuppressErased })
}

// movedAway reports whether the address was moved to another after a
// link issued at issued was made: the link then stops working, the new
// address has its own.
func movedAway(events []optin.Event, issued time.Time) bool {
	for _, e := range events {
		if e.Type != optin.EventSubjectUpdated || e.Time.Before(issued) {
			continue
		}
		var d struct {
			NewEmail string `json:"new_email"`
		}
		if json.Unmarshal(e.Details, &d) == nil && d.NewEmail != "" {
			return true
		}
	}
	return false
}

// down answers a failure of the store or the eraser: 503, try later.
func (h *Handler) down(w http.ResponseWriter, r *http.Request, what string, a optin.Address, err error) {
	t := h.text(r)
	h.log.Error(what, "subject", a, "err", err)
	h.problem(w, r, http.StatusServiceUnavailable, t.DownTitle, t.DownText, false)
}

// show is GET /p/TOKEN: the portal, or the page of an erased subject.
func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	s, ok := h.open(w, r)
	if !ok {
		return
	}
	t := h.text(r)
	notice := r.URL.Query().Get("notice")
	switch {
	case s.erased() || (s.ex == nil && notice == "erased"):
		h.render(w, r, http.StatusOK, page{T: t, Kind: "erased", Title: t.ErasedTitle})
		return
	case s.ex == nil:
		h.problem(w, r, http.StatusNotFound, t.NoDataTitle, t.NoDataText, false)
		return
	}
	cookie, err := h.ensureCookie(w, r)
	if err != nil {
		h.down(w, r, "portal cookie", s.claim.Subject, err)
		return
	}
	h.count.WithLabelValues("view").Inc()
	v := buildView(t, s.ex, h.o.Ledger.Purposes(), h.o.Now())
	base := "/p/" + s.token
	p := page{T: t, Kind: "portal", Title: t.Title, CSRF: h.csrf.token(cookie, s.token), Base: base, View: v,
		Intro:    fmt.Sprintf(t.Intro, v.Address, newStamp(s.claim.Issued.Add(h.o.LinkTTL)).Text),
		Notice:   h.notice(t, notice, r.URL.Query().Get("purpose")),
		CanErase: h.o.Eraser != nil}
	for _, f := range export.Formats {
		p.Formats = append(p.Formats, format{Href: base + "/export?format=" + string(f), Label: t.FormatLabels[string(f)]})
	}
	h.render(w, r, http.StatusOK, p)
}

// notice words a POST's outcome for the page it redirects to; unknown
// codes show nothing.
func (h *Handler) notice(t text, code, purpose string) string {
	msg, ok := t.Notices[code]
	if !ok {
		return ""
	}
	if p, ok := h.o.Ledger.Purposes()[purpose]; ok {
		return fmt.Sprintf(msg, title(p))
	}
	if strings.Contains(msg, "%s") {
		return ""
	}
	return msg
}

// download is GET /p/TOKEN/export?format=: everything stored, as the
// admin API's export gives it.
func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	s, ok := h.open(w, r)
	if !ok {
		return
	}
	t := h.text(r)
	f, err := export.ParseFormat(r.URL.Query().Get("format"))
	if err != nil {
		h.problem(w, r, http.StatusBadRequest, t.FormTitle, t.FormText, false)
		return
	}
	if s.ex == nil {
		h.problem(w, r, http.StatusNotFound, t.NoDataTitle, t.NoDataText, false)
		return
	}
	if err := s.ex.Serve(w, f); err != nil {
		h.down(w, r, "portal export", s.claim.Subject, err)
		return
	}
	h.count.WithLabelValues("export").Inc()
}
