package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"optinproxy/optin"
)

// schemaVersion is the layout described in doc.go.
const schemaVersion = "1"

// DefaultTimeout is how long Open waits for another process to release
// the file when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

var (
	bucketMeta         = []byte("meta")
	bucketSubjects     = []byte("subjects")
	bucketEvents       = []byte("events")
	bucketChains       = []byte("chains")
	bucketSuppressions = []byte("suppressions")
	// The delivery marks and their expiry index (deliveries.go).
	bucketDeliveries     = []byte("deliveries")
	bucketDeliveryExpiry = []byte("delivery_expiry")

	keySchema    = []byte("schema")
	keyLedgerKey = []byte("ledger_key")
)

// errClosed is returned by every method after Close.
var errClosed = fmt.Errorf("filestore: closed: %w", optin.ErrUnavailable)

// Options configure Open.
type Options struct {
	// Now is the clock for times the changes do not carry (a suppression
	// added by an event without a time). Default time.Now.
	Now func() time.Time
	// Timeout is how long Open waits for the file lock held by another
	// process before it fails. Zero means DefaultTimeout.
	Timeout time.Duration
}

// Store is the embedded optin.Store on one bbolt file.
type Store struct {
	db     *bolt.DB
	key    []byte // the ledger key
	now    func() time.Time
	closed atomic.Bool
	// nextPurge is when a write next purges expired delivery marks, in
	// Unix nanoseconds by now.
	nextPurge atomic.Int64
}

var _ optin.Store = (*Store)(nil)

// Open opens or creates the database file at path (its directory is
// created when missing). It fails with an error wrapping
// optin.ErrUnavailable when another process holds the file longer than
// opts.Timeout, and with one wrapping optin.ErrCorrupt when the file is
// not an optinproxy database.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("filestore: no path")
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("filestore: negative timeout %s", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        opts.Timeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("filestore: %s is in use by another process (waited %s): %w", path, opts.Timeout, optin.ErrUnavailable)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("filestore: %s is not an optinproxy database (%v): %w", path, err, optin.ErrCorrupt)
	case err != nil:
		return nil, fmt.Errorf("filestore: open %s: %w", path, err)
	}
	s := &Store{db: db, now: opts.Now}
	if err := db.Update(s.init); err != nil {
		db.Close()
		return nil, fmt.Errorf("filestore: %s: %w", path, err)
	}
	return s, nil
}

// init creates the buckets on first open, checks the schema and loads the
// ledger key, making it on first open.
func (s *Store) init(tx *bolt.Tx) error {
	if tx.Bucket(bucketMeta) == nil {
		var other []string
		tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			other = append(other, string(name))
			return nil
		})
		if len(other) > 0 {
			return fmt.Errorf("%w: a bbolt file of another program (buckets %q)", optin.ErrCorrupt, other)
		}
	}
	for _, name := range [][]byte{bucketMeta, bucketSubjects, bucketEvents, bucketChains, bucketSuppressions, bucketDeliveries, bucketDeliveryExpiry} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(keySchema); {
	case v == nil:
		if err := meta.Put(keySchema, []byte(schemaVersion)); err != nil {
			return err
		}
	case string(v) != schemaVersion:
		return fmt.Errorf("%w: schema version %q, this program knows %q", optin.ErrCorrupt, v, schemaVersion)
	}
	key := meta.Get(keyLedgerKey)
	if key == nil {
		key = optin.NewKey()
		if err := meta.Put(keyLedgerKey, key); err != nil {
			return err
		}
	}
	if len(key) != optin.KeySize {
		return fmt.Errorf("%w: ledger key of %d bytes", optin.ErrCorrupt, len(key))
	}
	s.key = bytes.Clone(key)
	return nil
}

// Ping reports whether the store is open.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(*bolt.Tx) error { return nil })
}

// Close closes the file; later calls of any method return an error
// wrapping optin.ErrUnavailable. It waits for running transactions.
// Closing twice is not an error.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("filestore: close: %w", err)
	}
	return nil
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return s.storeErr(s.db.View(fn))
}

// update runs fn in a write transaction, committed and synced when fn
// returns nil.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return s.storeErr(s.db.Update(fn))
}

func (s *Store) usable(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

// storeErr leaves errors that already say what they are and wraps the
// rest, bbolt's I/O failures, as optin.ErrUnavailable.
func (s *Store) storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return errClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, optin.ErrNotFound), errors.Is(err, optin.ErrCorrupt),
		errors.Is(err, optin.ErrBadInput), errors.Is(err, optin.ErrBadAddress):
		return err
	}
	return fmt.Errorf("filestore: %w: %w", optin.ErrUnavailable, err)
}
