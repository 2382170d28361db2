package portal

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"optinproxy/optin"
	"optinproxy/unsubscribe"
)

// post opens a POST of a portal link: the link and its subject (see
// open), the form, and the CSRF check. It answers the request itself and
// returns false when any fails, or when nothing is stored (any more).
func (h *Handler) post(w http.ResponseWriter, r *http.Request) (subject, bool) {
	s, ok := h.open(w, r)
	if !ok || !h.parseForm(w, r) {
		return subject{}, false
	}
	if !h.checkPost(r, s.token) {
		h.refuse(w, r)
		return subject{}, false
	}
	if s.ex == nil || s.erased() {
		t := h.text(r)
		h.problem(w, r, http.StatusNotFound, t.NoDataTitle, t.NoDataText, false)
		return subject{}, false
	}
	return s, true
}

// back redirects to the portal of token with a notice: after a POST the
// page is a GET, so a reload does not post again.
func (h *Handler) back(w http.ResponseWriter, r *http.Request, token, notice, purpose string) {
	q := queryWith(langQuery(r), "notice="+url.QueryEscape(notice))
	if purpose != "" {
		q += "&purpose=" + url.QueryEscape(purpose)
	}
	http.Redirect(w, r, "/p/"+token+q, http.StatusSeeOther)
}

// changeConsent is POST /p/TOKEN/consent: grant or withdraw one
// marketing purpose, with the evidence of this request and the words the
// subject saw on the button.
func (h *Handler) changeConsent(w http.ResponseWriter, r *http.Request) {
	s, ok := h.post(w, r)
	if !ok {
		return
	}
	t := h.text(r)
	name, action := r.PostForm.Get("purpose"), r.PostForm.Get("action")
	p, known := h.o.Ledger.Purposes()[name]
	if !known || p.Category != optin.CategoryMarketing || (action != "grant" && action != "withdraw") {
		h.problem(w, r, http.StatusBadRequest, t.FormTitle, t.FormText, false)
		return
	}
	if s.holds(name, action, h.o.Now()) {
		// A form sent twice (a reload, a double click) records nothing
		// twice.
		h.back(w, r, s.token, "unchanged", name)
		return
	}
	ev := unsubscribe.RequestEvidence(r)
	ev.PolicyVersion = h.o.PolicyVersion
	cc := optin.ConsentChange{Source: optin.SourcePortal, Actor: Actor}
	op, button := h.o.Ledger.Grant, t.GrantButton
	if action == "withdraw" {
		op, button = h.o.Ledger.Withdraw, t.WithdrawButton
	}
	ev.Text = button + ": " + title(p)
	cc.Evidence = ev
	res, err := op(r.Context(), s.claim.Subject, name, cc)
	if err != nil {
		h.down(w, r, "portal consent change", s.claim.Subject, err)
		return
	}
	notice := "unchanged"
	if res.Applied && res.Consent != nil {
		notice = string(res.Consent.Status)
		h.count.WithLabelValues(action).Inc()
		h.log.Info("portal consent change", "purpose", name, "status", res.Consent.Status, "subject", s.claim.Subject)
	}
	h.back(w, r, s.token, notice, name)
}

// changeAddress is POST /p/TOKEN/address: the subject's new address,
// typed twice. The ledger moves the records and keeps the history
// (subject.updated on both addresses); the answer is the portal of the
// new address, under a new link, and the old link stops working.
func (h *Handler) changeAddress(w http.ResponseWriter, r *http.Request) {
	s, ok := h.post(w, r)
	if !ok {
		return
	}
	to, err := optin.ParseAddress(r.PostForm.Get("email"))
	if err != nil {
		h.back(w, r, s.token, "bad", "")
		return
	}
	again, err := optin.ParseAddress(r.PostForm.Get("email_again"))
	switch {
	case err != nil || again != to:
		h.back(w, r, s.token, "mismatch", "")
		return
	case to == s.claim.Subject:
		h.back(w, r, s.token, "same", "")
		return
	}
	// An erased address takes no records: the move would withdraw
	// everything here, record nothing there, and land the subject on a
	// page saying their data was erased.
	if erased, err := h.erasedAddress(r.Context(), to); err != nil {
		h.down(w, r, "portal address change", s.claim.Subject, err)
		return
	} else if erased {
		h.log.Info("portal address change refused: the new address was erased", "subject", s.claim.Subject, "to", to)
		h.back(w, r, s.token, "erased_address", "")
		return
	}
	if _, err := h.o.Ledger.Move(r.Context(), s.claim.Subject, to, Actor, time.Time{}); err != nil {
		h.down(w, r, "portal address change", s.claim.Subject, err)
		return
	}
	h.count.WithLabelValues("move").Inc()
	h.log.Info("portal address change", "subject", s.claim.Subject, "to", to)
	token, _ := h.issue(to)
	h.back(w, r, token, "moved", "")
}

// erasedAddress reports whether a's erasure was carried out: what is left
// of it is the erased suppression.
func (h *Handler) erasedAddress(ctx context.Context, a optin.Address) (bool, error) {
	v, err := h.o.Ledger.Store().Subject(ctx, a, 0)
	if errors.Is(err, optin.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return erasedView(v), nil
}

// erasedView reports whether v is what an erasure left: the erased
// suppression.
func erasedView(v *optin.SubjectView) bool {
	return slices.ContainsFunc(v.Suppressions, func(s optin.Suppression) bool { return s.Reason == optin.SuppressErased })
}

// erase is POST /p/TOKEN/erasure: with the box ticked, the erasure is
// carried out now, and the page says what was erased.
func (h *Handler) erase(w http.ResponseWriter, r *http.Request) {
	if h.o.Eraser == nil {
		h.notFound(w, r)
		return
	}
	s, ok := h.post(w, r)
	if !ok {
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		h.back(w, r, s.token, "confirm", "")
		return
	}
	if err := h.o.Eraser.Erase(r.Context(), s.claim.Subject, Actor); err != nil {
		h.down(w, r, "portal erasure", s.claim.Subject, err)
		return
	}
	h.count.WithLabelValues("erase").Inc()
	h.log.Info("portal erasure", "subject", s.claim.Subject)
	h.back(w, r, s.token, "erased", "")
}

// holds reports whether the subject's record for purpose already is what
// action asks: withdrawn, or granted (and running) or pending.
func (s subject) holds(purpose, action string, now time.Time) bool {
	for _, c := range s.ex.Consents {
		if c.Purpose != purpose {
			continue
		}
		if action == "withdraw" {
			return c.Status == optin.StatusWithdrawn
		}
		return c.Active(now) || c.Status == optin.StatusPending
	}
	return false
}
