package optin

import "fmt"

// Limits of the outbox's names and keys.
const (
	// MaxTargetName is the longest target name a store keeps.
	MaxTargetName = 40
	// MaxMarkKey is the longest key Outbox.Mark takes: a hash, in any
	// form up to it.
	MaxMarkKey = 128
)

// CheckTarget refuses a target name that is not 1 to MaxTargetName of
// a-z, 0-9 and '-': stores use it in key names. Errors wrap ErrBadInput.
func CheckTarget(name string) error {
	if name == "" || len(name) > MaxTargetName {
		return fmt.Errorf("%w: target name of %d bytes (1 to %d)", ErrBadInput, len(name), MaxTargetName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("%w: target name %q: only a-z, 0-9 and '-'", ErrBadInput, name)
		}
	}
	return nil
}

// CheckDeliveries refuses records a store could not file for target:
// one of another target, without an event id, or with an unknown status.
// Errors wrap ErrBadInput.
func CheckDeliveries(target string, ds []OutboxDelivery) error {
	if err := CheckTarget(target); err != nil {
		return err
	}
	for i, d := range ds {
		switch {
		case d.Target != target:
			return fmt.Errorf("%w: delivery %d is of target %q, not %q", ErrBadInput, i, d.Target, target)
		case d.EventID == "" || len(d.EventID) > 128:
			return fmt.Errorf("%w: delivery %d: event id of %d bytes", ErrBadInput, i, len(d.EventID))
		case !d.Status.Valid():
			return fmt.Errorf("%w: delivery %d: status %q", ErrBadInput, i, d.Status)
		}
	}
	return nil
}

// CheckMarkKey refuses a key Outbox.Seen and Mark cannot take: empty or
// longer than MaxMarkKey. Errors wrap ErrBadInput.
func CheckMarkKey(key string) error {
	if key == "" || len(key) > MaxMarkKey {
		return fmt.Errorf("%w: mark key of %d bytes (1 to %d)", ErrBadInput, len(key), MaxMarkKey)
	}
	return nil
}
