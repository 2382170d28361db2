package webhooks

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"

	"optinproxy/internal/httpjson"
	"optinproxy/optin"
)

// fieldError is a malformed delivery; its message names the field, as in
// `field "purpose": required for consent.granted`.
type fieldError struct {
	field, problem string
}

func (e *fieldError) Error() string { return fmt.Sprintf("field %q: %s", e.field, e.problem) }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, problem: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	httpjson.WriteError(w, status, code, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

// ok acknowledges a delivery: the store has what it changed.
func ok(w http.ResponseWriter) { writeJSON(w, http.StatusOK, map[string]string{"status": "ok"}) }

func unauthorized(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusUnauthorized, "unauthorized", msg)
}

// fail answers err, the outcome of reading or applying a delivery from
// source, with the status its kind calls for, counts it, and logs what is
// unexpected, once, here.
func (rc *Receiver) fail(w http.ResponseWriter, r *http.Request, source string, err error) {
	var (
		fe  *fieldError
		mbe *http.MaxBytesError
		me  *marksError
	)
	switch {
	case errors.As(err, &mbe):
		rc.count(source, outcomeInvalid)
		writeError(w, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("the request body is over the limit of %d bytes for this endpoint", mbe.Limit))
	case errors.As(err, &fe):
		rc.count(source, outcomeInvalid)
		writeError(w, http.StatusBadRequest, "bad_request", fe.Error())
	case errors.Is(err, optin.ErrErased):
		// A grant for an erased address is refused for good: 200, so
		// that the sender does not retry it for ever. The log names no
		// address.
		rc.count(source, outcomeErased)
		rc.log.Info("webhook refused: the address was erased", "source", source)
		ok(w)
	case errors.As(err, &me), errors.Is(err, optin.ErrUnavailable), errors.Is(err, optin.ErrConflict),
		errors.Is(err, context.DeadlineExceeded):
		rc.count(source, outcomeFailed)
		rc.log.Warn("webhook not applied: store unavailable", "source", source, "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the store is not reachable now; retry later")
	case errors.Is(err, optin.ErrBadAddress), errors.Is(err, optin.ErrBadInput), errors.Is(err, optin.ErrUnknownPurpose):
		// The ledger's messages never repeat an address.
		rc.count(source, outcomeInvalid)
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	default:
		rc.count(source, outcomeFailed)
		rc.log.Error("webhook failed", "source", source, "method", r.Method, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// readBody reads at most limit bytes of r's body; more is an
// *http.MaxBytesError.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

// notAllowed answers a method the route does not serve.
func notAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "allowed: "+allow)
}

// secretEqual compares a secret from a request with the configured one in
// constant time (over their hashes, so the length does not show either).
func secretEqual(got, want string) bool {
	g, x := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return want != "" && subtle.ConstantTimeCompare(g[:], x[:]) == 1
}
