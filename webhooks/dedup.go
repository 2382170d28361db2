package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Marks remembers which inbound deliveries were applied, so that a sender's
// retry is applied once: optin.Outbox has these two methods, and both
// stores implement them. Keys are hashes, never personal data.
type Marks interface {
	// Seen reports whether key was marked and its mark has not run out.
	Seen(ctx context.Context, key string) (bool, error)
	// Mark remembers key until until.
	Mark(ctx context.Context, key string, until time.Time) error
}

// dedupKey is the mark of one delivery: source names the sender
// ("mailchimp", "mandrill", "crm"), id its id for the delivery (a hash of
// the form for Mailchimp, which sends none).
func dedupKey(source, id string) string {
	sum := sha256.Sum256([]byte(source + id))
	return "wh:" + hex.EncodeToString(sum[:])
}

// once applies a delivery exactly once: it returns (false, nil) when key
// is marked already, else calls apply and, when apply succeeds, marks key
// for the dedup window. A failure of Seen or Mark is returned wrapped in
// a *marksError, so that the sender is asked to retry (the ledger's ordering
// makes a second application of the same change record nothing).
func (rc *Receiver) once(ctx context.Context, key string, apply func() error) (applied bool, err error) {
	seen, err := rc.marks.Seen(ctx, key)
	if err != nil {
		return false, &marksError{err}
	}
	if seen {
		return false, nil
	}
	if err := apply(); err != nil {
		return false, err
	}
	if err := rc.marks.Mark(ctx, key, rc.now().Add(rc.window)); err != nil {
		return false, &marksError{err}
	}
	return true, nil
}

// marksError is a failure to read or write a dedup mark: the store is
// not reachable, and the sender must retry.
type marksError struct{ err error }

func (e *marksError) Error() string { return "webhooks: dedup mark: " + e.err.Error() }
func (e *marksError) Unwrap() error { return e.err }
