package optin

import (
	"encoding/json"
	"time"
)

// ReceiptDetails is the details object of a message.relayed or
// message.blocked event: which message, under which purpose, and why the
// recipient got it or not. The body is never stored.
type ReceiptDetails struct {
	// MessageID is the message's Message-ID, the received one or the
	// one the proxy added.
	MessageID string `json:"message_id"`
	// QueueID is the proxy's id for the message, as in its Received:
	// header, its reply and its logs.
	QueueID  string `json:"queue_id,omitempty"`
	Decision string `json:"decision"` // "allow" or "block"
	Reason   Reason `json:"reason"`
	// ConsentEvent is the event that recorded the consent record the
	// decision rested on, when there was one.
	ConsentEvent string `json:"consent_event,omitempty"`
	// Mode is "monitor" when policy.mode let a blocked recipient have
	// the message anyway; empty when enforcing.
	Mode string `json:"mode,omitempty"`
	// Stage is "rcpt" when the recipient was refused at RCPT, before the
	// message (and its Message-ID) was known.
	Stage string `json:"stage,omitempty"`
	// Uncertain is true when the upstream's reply to the message was
	// lost (its connection dropped after the final dot): the copy may or
	// may not have been delivered, and is not sent again.
	Uncertain bool `json:"uncertain,omitempty"`
}

// Receipt is what a relay knows of one recipient's fate, turned into a
// Change by Change.
type Receipt struct {
	Subject  Address
	Purpose  string
	Actor    string
	Time     time.Time
	Decision Decision
	// Relayed is true when the copy went to the upstream: allowed, or
	// blocked in monitor mode.
	Relayed bool
	Details ReceiptDetails
	// Delivered, when set, also records the delivered copy for dedup.
	Delivered *Delivery
}

// Change returns the event-only change that records the receipt:
// message.relayed when the copy went out, else message.blocked. The
// event gets its id here, from its time cut to the millisecond (the
// precision a receipt keeps), so that a write that is tried again (a
// journal's) can be recognized.
func (r Receipt) Change() Change {
	d := r.Details
	d.Decision = r.Decision.Verb()
	d.Reason = r.Decision.Reason
	typ := EventMessageBlocked
	if r.Relayed {
		typ = EventMessageRelayed
	}
	details, err := json.Marshal(d)
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	e := Event{Type: typ, Subject: r.Subject, Purpose: r.Purpose, Actor: r.Actor, Details: details}
	if !r.Time.IsZero() {
		e.Time = r.Time.UTC().Truncate(time.Millisecond)
		e.ID = NewEventID(e.Time)
	}
	return Change{Subject: r.Subject, Event: e, Delivered: r.Delivered, receipt: &d}
}
