package admin

import (
	"errors"
	"net/http"
	"time"

	"optinproxy/optin"
)

// erasureRequest is the optional body of POST .../erasure.
type erasureRequest struct {
	// At is when: absent, or not after now, erases before the answer.
	At *time.Time `json:"at"`
}

// erasureAnswer is what the erasure routes answer.
type erasureAnswer struct {
	Email string `json:"email"`
	// Status is "erased", "scheduled" or "cancelled".
	Status string `json:"status"`
	// At is when a scheduled erasure is due.
	At *time.Time `json:"at,omitempty"`
	// Applied is false when nothing new was recorded: erased already, or
	// scheduled for that time already.
	Applied bool         `json:"applied"`
	Event   *optin.Event `json:"event,omitempty"`
}

// postErasure erases the subject at once (200, status erased) or
// schedules its erasure (202, status scheduled, with at).
func (a *API) postErasure(w http.ResponseWriter, r *http.Request, p principal) {
	addr, ok := pathAddress(w, r)
	if !ok {
		return
	}
	var req erasureRequest
	if err := decodeOptional(r, &req); err != nil {
		a.failDecode(w, r, err)
		return
	}
	er := optin.ErasureRequest{Actor: p.actor(), Notify: a.opts.NotifyErasure}
	if req.At != nil {
		er.At = *req.At
	}
	res, err := a.ledger.Erase(r.Context(), addr, er)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ans := erasureAnswer{Email: addr.String(), Status: "erased", Applied: res.Applied}
	if res.Applied {
		ans.Event = &res.Event
	}
	status := http.StatusOK
	if !res.Erased {
		at := res.At
		ans.Status, ans.At, status = "scheduled", &at, http.StatusAccepted
	}
	// The log names the token and what was done, never the address.
	a.log.Info("erasure", "token", p.name, "status", ans.Status, "applied", res.Applied)
	writeJSON(w, status, ans)
}

// cancelErasure cancels a scheduled erasure; 404 when none is.
func (a *API) cancelErasure(w http.ResponseWriter, r *http.Request, p principal) {
	addr, ok := pathAddress(w, r)
	if !ok {
		return
	}
	res, err := a.ledger.CancelErasure(r.Context(), addr, p.actor())
	if errors.Is(err, optin.ErrNoErasure) {
		writeError(w, http.StatusNotFound, "not_found", "no erasure is scheduled for this address")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, erasureAnswer{Email: addr.String(), Status: "cancelled", Applied: res.Applied, Event: &res.Event})
}
