package webhooks

import (
	"context"
	"errors"
	"time"

	"optinproxy/optin"
)

// Target is one destination of the outbox: an outbound endpoint, the
// Mailchimp audience, Mandrill's rejection list. The Dispatcher calls
// Deliver for each event the target wants, in order per subject, and
// records the outcome in the store before and after each attempt.
type Target interface {
	// Name identifies the target in the store and in the outbox
	// commands: stable across restarts, [a-z0-9-], at most 40 bytes.
	Name() string
	// Wants reports whether the target takes events of this type at all;
	// the others only move its cursor.
	Wants(e optin.Event) bool
	// Deliver sends one event. retry says whether a later attempt may
	// succeed (a timeout, a 5xx, a 429) or never will (a 4xx, an event
	// that cannot be expressed); err, when not nil, says why in words
	// without personal data. A *LaterError asks for the next attempt not
	// before its After.
	Deliver(ctx context.Context, d Delivery) (retry bool, err error)
}

// Delivery is what a Target sends: the event, with the id a receiver
// deduplicates by (the same on every attempt), and which attempt this is
// (1 for the first).
type Delivery struct {
	ID      string
	Event   optin.Event
	Attempt int
}

// LaterError is a failure whose sender said when to come back (429 or
// 503 with Retry-After).
type LaterError struct {
	After time.Duration
	Err   error
}

func (e *LaterError) Error() string { return e.Err.Error() }
func (e *LaterError) Unwrap() error { return e.Err }

// retryAfter is the wait err asks for, 0 when it names none.
func retryAfter(err error) time.Duration {
	var le *LaterError
	if errors.As(err, &le) {
		return le.After
	}
	return 0
}
