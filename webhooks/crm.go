package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"optinproxy/optin"
)

// crmEvent is the body of one CRM delivery. Fields this proxy does not
// know are tolerated: a CRM may send more than it needs to.
type crmEvent struct {
	Type       string          `json:"type"`
	Email      string          `json:"email"`
	NewEmail   string          `json:"new_email"`
	Purpose    string          `json:"purpose"`
	Basis      optin.Basis     `json:"basis"`
	Evidence   json.RawMessage `json:"evidence"`
	OccurredAt string          `json:"occurred_at"`
}

// crmChange is a crmEvent checked and parsed.
type crmChange struct {
	Type     optin.EventType
	Subject  optin.Address
	NewEmail optin.Address
	Purpose  string
	Basis    optin.Basis
	Evidence optin.Evidence
	At       time.Time
}

// serveCRM applies one Standard Webhooks signed event from a CRM.
func (rc *Receiver) serveCRM(w http.ResponseWriter, r *http.Request) {
	if rc.crmSecret == "" {
		writeError(w, http.StatusNotFound, "not_found", "no CRM webhook is configured")
		return
	}
	if r.Method != http.MethodPost {
		notAllowed(w, "POST")
		return
	}
	body, err := readBody(w, r, rc.maxBody)
	if err != nil {
		rc.fail(w, r, "crm", err)
		return
	}
	if err := VerifyStandard(rc.crmSecret, r.Header, body, rc.now(), rc.tolerance); err != nil {
		rc.count("crm", outcomeRejected)
		msg := "missing or wrong webhook-signature"
		if errors.Is(err, ErrStale) {
			msg = "webhook-timestamp is too far from now; a replay is refused"
		}
		unauthorized(w, msg)
		return
	}
	ch, err := rc.parseCRM(body, r.Header.Get(HeaderTimestamp))
	if err != nil {
		rc.fail(w, r, "crm", err)
		return
	}
	var changed bool
	applied, err := rc.once(r.Context(), dedupKey("crm", r.Header.Get(HeaderID)), func() (err error) {
		changed, err = rc.applyCRM(r.Context(), ch)
		return err
	})
	if err != nil {
		rc.fail(w, r, "crm", err)
		return
	}
	if !applied {
		rc.count("crm", outcomeDuplicate)
	} else {
		rc.count("crm", outcomeOf(changed))
	}
	ok(w)
}

// parseCRM checks a body; ts is the verified webhook-timestamp, the time
// of a change without occurred_at.
func (rc *Receiver) parseCRM(body []byte, ts string) (crmChange, error) {
	var ev crmEvent
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&ev); err != nil {
		return crmChange{}, badField("body", "not a JSON object: %v", err)
	}
	// One delivery is one event. Decode stops after the first value, so a
	// second one (events sent as NDJSON) or trailing bytes would be dropped
	// without a word while the CRM is told all was applied.
	if _, err := dec.Token(); err != io.EOF {
		return crmChange{}, badField("body", "more than one JSON value")
	}
	ch := crmChange{Type: optin.EventType(ev.Type), Purpose: ev.Purpose, Basis: ev.Basis}
	consent := false
	switch ch.Type {
	case "":
		return ch, badField("type", "required")
	case optin.EventConsentGranted, optin.EventConsentWithdrawn:
		consent = true
	case optin.EventSubjectUpdated, optin.EventSubjectErased:
	default:
		return ch, badField("type", "%q is not one of consent.granted, consent.withdrawn, subject.updated, subject.erased", ev.Type)
	}
	var err error
	if ch.Subject, err = jsonAddress("email", ev.Email); err != nil {
		return ch, err
	}
	if ch.Type == optin.EventSubjectUpdated {
		if ch.NewEmail, err = jsonAddress("new_email", ev.NewEmail); err != nil {
			return ch, err
		}
	}
	if consent {
		switch _, known := rc.ledger.Purposes()[ev.Purpose]; {
		case ev.Purpose == "":
			return ch, badField("purpose", "required for %s", ev.Type)
		case !known:
			return ch, badField("purpose", "%q is not configured", ev.Purpose)
		}
		if ev.Basis != "" && !ev.Basis.Valid() {
			return ch, badField("basis", "%q is not a lawful basis", ev.Basis)
		}
		if len(ev.Evidence) > 0 && string(ev.Evidence) != "null" {
			if err := json.Unmarshal(ev.Evidence, &ch.Evidence); err != nil {
				return ch, badField("evidence", "an object of strings, with time in RFC 3339")
			}
		}
	}
	if ev.OccurredAt != "" {
		if ch.At, err = time.Parse(time.RFC3339Nano, ev.OccurredAt); err != nil {
			return ch, badField("occurred_at", "not RFC 3339")
		}
	} else {
		unix, _ := strconv.ParseInt(ts, 10, 64) // verified already
		ch.At = time.Unix(unix, 0)
	}
	return ch, nil
}

func jsonAddress(field, s string) (optin.Address, error) {
	if s == "" {
		return optin.Address{}, badField(field, "required")
	}
	a, err := optin.ParseAddress(s)
	if err != nil {
		return optin.Address{}, badField(field, "%v", err)
	}
	return a, nil
}

// applyCRM records ch and reports whether the ledger changed anything. A
// change older than the stored record is ignored by the ledger (newest
// wins).
func (rc *Receiver) applyCRM(ctx context.Context, ch crmChange) (bool, error) {
	cc := optin.ConsentChange{Basis: ch.Basis, Source: optin.SourceCRM, Actor: ActorCRM, At: ch.At, Evidence: ch.Evidence}
	switch ch.Type {
	case optin.EventConsentGranted:
		res, err := rc.ledger.Grant(ctx, ch.Subject, ch.Purpose, cc)
		return res.Applied, err
	case optin.EventConsentWithdrawn:
		res, err := rc.ledger.Withdraw(ctx, ch.Subject, ch.Purpose, cc)
		return res.Applied, err
	case optin.EventSubjectUpdated:
		res, err := rc.ledger.Move(ctx, ch.Subject, ch.NewEmail, ActorCRM, ch.At)
		return res.Moved, err
	}
	return rc.eraseCRM(ctx, ch)
}

// eraseCRM handles subject.erased: the CRM passes on the subject's
// request to be forgotten, and the ledger erases it at once (the
// subject's key destroyed, its history made unreadable, the erased
// suppression kept as a keyed hash; see optin.Ledger.Erase). An address
// the ledger holds nothing about is blocked all the same. A repeat
// changes nothing.
func (rc *Receiver) eraseCRM(ctx context.Context, ch crmChange) (bool, error) {
	res, err := rc.ledger.Erase(ctx, ch.Subject, optin.ErasureRequest{Actor: ActorCRM, Notify: rc.notifyErasure})
	return res.Applied, err
}
