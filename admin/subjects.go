package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"optinproxy/optin"
)

// subjectJSON is the answer of GET /api/v1/subjects/{email}.
//
// An erased subject answers 200 with what the erasure left: no consents,
// the erased suppression, its events with erased set and no personal
// fields, and erased true. A subject with a scheduled erasure has
// erasure_at.
type subjectJSON struct {
	Email        string            `json:"email"`
	Consents     []optin.Consent   `json:"consents"`
	Suppressions []suppressionJSON `json:"suppressions"`
	Events       []optin.Event     `json:"events"`
	Erased       bool              `json:"erased,omitempty"`
	ErasureAt    *time.Time        `json:"erasure_at,omitempty"`
}

type suppressionJSON struct {
	Email     string                  `json:"email,omitempty"`
	Reason    optin.SuppressionReason `json:"reason"`
	CreatedAt time.Time               `json:"created_at"`
}

// recentEvents is how many events a subject answer carries.
const recentEvents = 20

// pathAddress reads and normalizes the {email} path value.
func pathAddress(w http.ResponseWriter, r *http.Request) (optin.Address, bool) {
	a, err := optin.ParseAddress(r.PathValue("email"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_address", clientMessage(err))
		return optin.Address{}, false
	}
	return a, true
}

func (a *API) getSubject(w http.ResponseWriter, r *http.Request, _ principal) {
	addr, ok := pathAddress(w, r)
	if !ok {
		return
	}
	v, err := a.store.Subject(r.Context(), addr, recentEvents)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, subjectAnswer(v))
}

func subjectAnswer(v *optin.SubjectView) subjectJSON {
	out := subjectJSON{Email: v.Address.String(), Consents: v.Consents, Events: v.Events,
		Suppressions: make([]suppressionJSON, 0, len(v.Suppressions)), Erased: v.Erased}
	if !v.ErasureAt.IsZero() {
		at := v.ErasureAt
		out.ErasureAt = &at
	}
	if out.Consents == nil {
		out.Consents = []optin.Consent{}
	}
	if out.Events == nil {
		out.Events = []optin.Event{}
	}
	for _, s := range v.Suppressions {
		out.Suppressions = append(out.Suppressions, suppressionJSON{Reason: s.Reason, CreatedAt: s.CreatedAt})
	}
	return out
}

// consentRequest is the body of PUT and DELETE on a consent; all optional.
type consentRequest struct {
	Basis    optin.Basis     `json:"basis"`
	Source   string          `json:"source"`
	Evidence *optin.Evidence `json:"evidence"`
	// OccurredAt is when the change happened, for changes reported late.
	OccurredAt *time.Time `json:"occurred_at"`
}

// consentAnswer is what PUT and DELETE answer: the stored record, and
// whether this request changed it (false: an equal or newer change was
// already stored).
type consentAnswer struct {
	Email   string        `json:"email"`
	Applied bool          `json:"applied"`
	Consent optin.Consent `json:"consent"`
	Event   *optin.Event  `json:"event,omitempty"`
}

func (a *API) putConsent(w http.ResponseWriter, r *http.Request, p principal) {
	a.changeConsent(w, r, p, a.ledger.Grant)
}

func (a *API) deleteConsent(w http.ResponseWriter, r *http.Request, p principal) {
	a.changeConsent(w, r, p, a.ledger.Withdraw)
}

type consentOp func(ctx context.Context, a optin.Address, purpose string, cc optin.ConsentChange) (optin.Result, error)

func (a *API) changeConsent(w http.ResponseWriter, r *http.Request, p principal, op consentOp) {
	addr, ok := pathAddress(w, r)
	if !ok {
		return
	}
	var req consentRequest
	if err := decodeOptional(r, &req); err != nil {
		a.failDecode(w, r, err)
		return
	}
	cc := optin.ConsentChange{Basis: req.Basis, Source: req.Source, Actor: p.actor()}
	if req.Evidence != nil {
		cc.Evidence = *req.Evidence
	}
	if req.OccurredAt != nil {
		cc.At = *req.OccurredAt
	}
	res, err := op(r.Context(), addr, r.PathValue("purpose"), cc)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ans := consentAnswer{Email: addr.String(), Applied: res.Applied}
	if res.Consent != nil {
		ans.Consent = *res.Consent
	}
	if res.Applied {
		ans.Event = &res.Event
		ans.Consent.Evidence = optin.EvidenceOf(res.Event)
	}
	writeJSON(w, http.StatusOK, ans)
}

// decodeOptional reads a JSON body if there is one; unknown fields are
// errors, so a typo does not pass silently.
func decodeOptional(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("%w: more than one JSON value in the body", optin.ErrBadInput)
	}
	return nil
}

// failDecode answers a body that does not decode.
func (a *API) failDecode(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, optin.ErrBadInput) || errors.Is(err, os.ErrDeadlineExceeded) {
		a.fail(w, r, err)
		return
	}
	badRequest(w, "body is not valid JSON for this endpoint: "+err.Error())
}
