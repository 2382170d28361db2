package webhooks

import (
	"encoding/json"
	"time"

	"optinproxy/optin"
)

// Payload is the JSON body of an outbound webhook: one ledger event, with
// what a receiver needs to act on it and no more personal data. The
// address is the only personal field; evidence (IP addresses, user
// agents, the text shown), expiry dates and the chain hashes stay in the
// ledger, but for consent.expiring and consent.expired, which carry
// expires_at: when the consent ends (a CRM asks for renewal before it)
// or ended. Empty fields are left out.
//
//	{"id": "01hz...", "type": "consent.withdrawn", "time": "2025-01-02T03:04:05Z",
//	 "email": "ana@example.org", "purpose": "newsletter", "status": "withdrawn",
//	 "basis": "consent", "source": "unsubscribe", "actor": "subject"}
//
// id is the ledger event's id (the webhook-id header names the delivery:
// target and event). new_email comes with subject.updated, reason with
// suppression.added and suppression.removed and with consent.expired
// (retention, or unconfirmed for a double opt-in never confirmed), status,
// basis and source with consent events. For an erased subject the address
// can no longer be read: erased is true, and email (and new_email) are
// left out, so a receiver finds the subject by an earlier delivery's event
// ids, if at all; but the subject.erased event of an erasure made with a
// notice (optin.Erasure.Notify, set when outbound targets are configured)
// carries email, so that the receiver can delete its copy too.
type Payload struct {
	ID       string          `json:"id"`
	Type     optin.EventType `json:"type"`
	Time     time.Time       `json:"time"`
	Email    string          `json:"email,omitempty"`
	NewEmail string          `json:"new_email,omitempty"`
	Purpose  string          `json:"purpose,omitempty"`
	Status   string          `json:"status,omitempty"`
	Basis    string          `json:"basis,omitempty"`
	Source   string          `json:"source,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	// ExpiresAt comes with consent.expiring and consent.expired only.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Actor     string    `json:"actor,omitempty"`
	Erased    bool      `json:"erased,omitempty"`
}

// payloadDetails are the fields of an event's details a payload carries.
type payloadDetails struct {
	Status   string `json:"status"`
	Basis    string `json:"basis"`
	Source   string `json:"source"`
	Reason   string `json:"reason"`
	NewEmail string `json:"new_email"`
	// ExpiresAt is a time or absent; a malformed one drops it alone.
	ExpiresAt json.RawMessage `json:"expires_at"`
}

// NewPayload returns the payload of e.
func NewPayload(e optin.Event) Payload {
	p := Payload{ID: e.ID, Type: e.Type, Time: e.Time.UTC(), Purpose: e.Purpose, Actor: e.Actor, Erased: e.Erased}
	if e.Erased {
		if e.Type == optin.EventSubjectErased && !e.Subject.IsZero() {
			p.Email = e.Subject.String() // from the erasure's notice
		}
		return p
	}
	if !e.Subject.IsZero() {
		p.Email = e.Subject.String()
	}
	var d payloadDetails
	if len(e.Details) > 0 && json.Unmarshal(e.Details, &d) == nil {
		p.Status, p.Basis, p.Source, p.Reason = d.Status, d.Basis, d.Source, d.Reason
		if e.Type == optin.EventSubjectUpdated {
			p.NewEmail = d.NewEmail
		}
		var at time.Time
		if (e.Type == optin.EventConsentExpiring || e.Type == optin.EventConsentExpired) && json.Unmarshal(d.ExpiresAt, &at) == nil {
			p.ExpiresAt = at.UTC()
		}
	}
	return p
}

// MarshalPayload returns the JSON body sent for e.
func MarshalPayload(e optin.Event) ([]byte, error) {
	return json.Marshal(NewPayload(e))
}
