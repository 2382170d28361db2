package webhooks

import (
	"fmt"
	"strings"
	"time"

	"optinproxy/optin"
)

// ExponentialBackoff returns the outbox's wait before attempt n+1 after
// attempt n failed: min·2^(n-1), capped at max, with equal jitter (between
// half of it and all of it, so that a receiver coming back is not hit by
// every delivery at once, yet no retry comes much sooner than planned).
// random returns a number in [0, 1).
func ExponentialBackoff(min, max time.Duration, random func() float64) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		ceil := max
		if n := attempt - 1; n < 0 {
			ceil = min
		} else if n < 62 {
			if c := min << n; c > 0 && c < max {
				ceil = c
			}
		}
		half := ceil / 2
		return half + time.Duration(random()*float64(ceil-half))
	}
}

// DeliveryID is the id of target's delivery of an event: the webhook-id
// receivers deduplicate by (the same on every attempt) and the id the
// outbox commands and the admin API name a delivery by.
func DeliveryID(target, eventID string) string {
	return optin.OutboxDelivery{Target: target, EventID: eventID}.ID()
}

// ParseID splits a DeliveryID into its target and event id. Target names
// hold no dot, so the first one separates them.
func ParseID(id string) (target, eventID string, err error) {
	target, eventID, ok := strings.Cut(id, ".")
	if !ok || !validTargetName(target) || eventID == "" {
		return "", "", fmt.Errorf("%w: want target.event-id", ErrBadDeliveryID)
	}
	return target, eventID, nil
}

// validTargetName reports whether name is [a-z0-9-], 1 to 40 bytes.
func validTargetName(name string) bool {
	if name == "" || len(name) > 40 {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
