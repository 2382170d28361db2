package admin

import (
	"net/http"
	"strconv"
	"time"

	"optinproxy/optin"
)

type eventsJSON struct {
	Events     []optin.Event `json:"events"`
	NextCursor string        `json:"next_cursor"`
}

// listEvents pages through the log oldest first:
// ?subject=&type=&since=RFC3339&cursor=&limit=.
func (a *API) listEvents(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	var eq optin.EventQuery
	if s := q.Get("subject"); s != "" {
		addr, err := optin.ParseAddress(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_address", clientMessage(err))
			return
		}
		eq.Subject = addr
	}
	eq.Type = optin.EventType(q.Get("type"))
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			badRequest(w, "since must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z")
			return
		}
		eq.Since = t
	}
	eq.Cursor = q.Get("cursor")
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			badRequest(w, "limit must be a positive number")
			return
		}
		eq.Limit = n
	}
	page, err := a.store.Events(r.Context(), eq)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if page.Events == nil {
		page.Events = []optin.Event{}
	}
	writeJSON(w, http.StatusOK, eventsJSON{Events: page.Events, NextCursor: page.NextCursor})
}

// verify checks every subject's hash chain.
func (a *API) verify(w http.ResponseWriter, r *http.Request, _ principal) {
	rep, err := a.store.Verify(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if rep.Broken == nil {
		rep.Broken = []optin.BrokenChain{}
	}
	writeJSON(w, http.StatusOK, rep)
}
