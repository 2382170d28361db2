package admin

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"optinproxy/optin"
)

type suppressionsJSON struct {
	Suppressions []suppressionJSON `json:"suppressions"`
	NextCursor   string            `json:"next_cursor"`
}

func (a *API) listSuppressions(w http.ResponseWriter, r *http.Request, _ principal) {
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			badRequest(w, "limit must be a positive number")
			return
		}
		limit = n
	}
	page, err := a.store.Suppressions(r.Context(), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := suppressionsJSON{Suppressions: make([]suppressionJSON, 0, len(page.Suppressions)), NextCursor: page.NextCursor}
	for _, s := range page.Suppressions {
		out.Suppressions = append(out.Suppressions, suppressionJSON{Email: s.Subject.String(), Reason: s.Reason, CreatedAt: s.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

type suppressionRequest struct {
	Email  string                  `json:"email"`
	Reason optin.SuppressionReason `json:"reason"`
}

// addSuppression: POST {"email": ..., "reason": ...}; reason defaults to
// manual. Erasure suppressions are made by erasure only.
func (a *API) addSuppression(w http.ResponseWriter, r *http.Request, p principal) {
	var req suppressionRequest
	if err := decodeOptional(r, &req); err != nil {
		a.failDecode(w, r, err)
		return
	}
	addr, err := optin.ParseAddress(req.Email)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_address", clientMessage(err))
		return
	}
	if req.Reason == "" {
		req.Reason = optin.SuppressManual
	}
	if req.Reason == optin.SuppressErased {
		badRequest(w, "the erased suppression is made by erasure, not by hand; the reasons to add are: "+manualReasons())
		return
	}
	if !req.Reason.Valid() {
		badRequest(w, fmt.Sprintf("unknown suppression reason %q; the reasons to add are: %s", req.Reason, manualReasons()))
		return
	}
	res, err := a.ledger.Suppress(r.Context(), addr, req.Reason, p.actor())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if res.Applied {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"email": addr.String(), "reason": req.Reason, "applied": res.Applied})
}

// removeSuppression: DELETE /api/v1/suppressions/{email}[?reason=R]
// lifts one reason, or every reason but erased. reason=erased takes the
// erase scope: the person asked to come back, and the address may then
// be granted again (with a fresh key).
func (a *API) removeSuppression(w http.ResponseWriter, r *http.Request, p principal) {
	addr, ok := pathAddress(w, r)
	if !ok {
		return
	}
	var reasons []optin.SuppressionReason
	if s := r.URL.Query().Get("reason"); s != "" {
		reasons = []optin.SuppressionReason{optin.SuppressionReason(s)}
	} else {
		v, err := a.store.Subject(r.Context(), addr, 0)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		for _, s := range v.Suppressions {
			if s.Reason != optin.SuppressErased {
				reasons = append(reasons, s.Reason)
			}
		}
	}
	removed := []optin.SuppressionReason{}
	for _, reason := range reasons {
		if reason == optin.SuppressErased && !p.has(ScopeErase) {
			writeError(w, http.StatusForbidden, "forbidden", "token "+p.name+" lacks the erase scope, which lifting the erased suppression takes")
			return
		}
		res, err := a.ledger.Unsuppress(r.Context(), addr, reason, p.actor())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if res.Applied {
			removed = append(removed, reason)
		}
	}
	if len(removed) == 0 {
		writeError(w, http.StatusNotFound, "not_found", "the address is not suppressed for that reason")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"email": addr.String(), "removed": removed})
}

// manualReasons lists the suppression reasons a client may add: all but
// erased, which only erasure makes.
func manualReasons() string {
	var names []string
	for _, r := range optin.SuppressionReasons {
		if r != optin.SuppressErased {
			names = append(names, string(r))
		}
	}
	return strings.Join(names, ", ")
}
