package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"optinproxy/optin"
)

// Store is what the journal needs of the consent store: optin.Store has
// it. A Journal is a Store itself, so that the relay takes it in the
// store's place.
type Store interface {
	Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error)
	Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error)
}

var _ Store = (*Journal)(nil)

// KeySize is the size of Options.Key.
const KeySize = 32

// Defaults of Options.
const (
	DefaultRetryEvery   = time.Second
	DefaultStoreTimeout = 10 * time.Second
)

// Options configure Open.
type Options struct {
	// Path is the journal file, such as <store.path>/receipts.journal.
	// Its directory is created (0700) when missing; the file is made
	// 0600. Required.
	Path string
	// Key seals the records (AES-256-GCM): KeySize bytes, derived from
	// the ledger key (Keyring.Derive("journal")). Required.
	Key []byte
	// Store is where changes go. Required.
	Store Store
	// Logger, scoped by Open with component=journal; default discards.
	Logger *slog.Logger
	// Now gives the events that have no time theirs; default time.Now.
	Now func() time.Time
	// RetryEvery is how often Run tries to drain while the store is
	// down; it backs off to 30 times as long. Default DefaultRetryEvery.
	RetryEvery time.Duration
	// StoreTimeout bounds each call to the store: Apply's try (so that a
	// store that hangs leaves time to journal before the caller gives
	// up) and each batch of a drain. Default DefaultStoreTimeout.
	StoreTimeout time.Duration
}

// check applies the defaults and reports every problem at once.
func (o *Options) check() error {
	var errs []error
	if o.Path == "" {
		errs = append(errs, errors.New("journal: no path"))
	}
	if len(o.Key) != KeySize {
		errs = append(errs, fmt.Errorf("journal: a key of %d bytes, want %d", len(o.Key), KeySize))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("journal: no store"))
	}
	if o.RetryEvery < 0 || o.StoreTimeout < 0 {
		errs = append(errs, errors.New("journal: a negative duration"))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RetryEvery == 0 {
		o.RetryEvery = DefaultRetryEvery
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = DefaultStoreTimeout
	}
	return errors.Join(errs...)
}
