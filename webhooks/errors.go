package webhooks

import "errors"

// Sentinel errors of package webhooks. Functions wrap them with %w and a
// detail; callers compare with errors.Is.
var (
	// ErrBadSignature means a Standard Webhooks request is unsigned, its
	// headers are malformed, or no signature matches the body.
	ErrBadSignature = errors.New("webhooks: bad signature")

	// ErrStale means a Standard Webhooks timestamp is further from now
	// than the tolerance, in either direction: a replay or a bad clock.
	ErrStale = errors.New("webhooks: timestamp outside tolerance")

	// ErrBadSecret means a signing secret is not "whsec_" followed by
	// base64 of enough bytes.
	ErrBadSecret = errors.New("webhooks: bad secret")
)

// Sentinel errors of the Dispatcher.
var (
	// ErrUnknownTarget means no configured target has the name asked for.
	ErrUnknownTarget = errors.New("webhooks: unknown target")

	// ErrNotDead means a replay asked for a delivery that is pending or
	// was delivered: only dead deliveries are replayed.
	ErrNotDead = errors.New("webhooks: delivery is not dead")

	// ErrBadDeliveryID means a delivery id is not "target.event-id".
	ErrBadDeliveryID = errors.New("webhooks: bad delivery id")
)
