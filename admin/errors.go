package admin

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"optinproxy/internal/httpjson"
	"optinproxy/optin"
)

// writeError answers {"error": {"code": ..., "message": ...}}, the shape
// of every error answer.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	httpjson.WriteError(w, status, code, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

// fail answers err with the status its kind calls for; unexpected errors
// are logged here, once, and answered without their detail.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		tooLarge(w, mbe.Limit, "")
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's read deadline passed: the body came too slowly.
		writeError(w, http.StatusRequestTimeout, "request_timeout", "the request body did not arrive in time")
	case errors.Is(err, optin.ErrErased):
		writeError(w, http.StatusConflict, "erased", "the address was erased; it takes no consent until its erased suppression is removed")
	case errors.Is(err, optin.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "nothing is stored for this address")
	case errors.Is(err, optin.ErrUnknownPurpose):
		writeError(w, http.StatusNotFound, "unknown_purpose", clientMessage(err))
	case errors.Is(err, optin.ErrBadAddress):
		writeError(w, http.StatusBadRequest, "bad_address", clientMessage(err))
	case errors.Is(err, optin.ErrBadInput):
		writeError(w, http.StatusBadRequest, "bad_request", clientMessage(err))
	case errors.Is(err, optin.ErrUnavailable), errors.Is(err, optin.ErrConflict):
		a.log.Warn("store unavailable", "route", r.Pattern, "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the store is not reachable now; nothing was changed, try again")
	default:
		a.log.Error("request failed", "method", r.Method, "route", r.Pattern, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// clientMessage is the text of an input error for the client: without the
// package prefix of optin's sentinels ("bad address: missing @", not
// "optin: bad address: missing @").
func clientMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "optin: ")
}

// tooLarge answers a body over limit; more adds to the message.
func tooLarge(w http.ResponseWriter, limit int64, more string) {
	writeError(w, http.StatusRequestEntityTooLarge, "too_large",
		fmt.Sprintf("the request body is over the limit of %d bytes for this endpoint%s", limit, more))
}

// badRequest is for input the handler itself refuses.
func badRequest(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusBadRequest, "bad_request", msg)
}
