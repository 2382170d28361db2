package filestore

import (
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

// schemaVersion is the layout described in doc.go; Open migrates
// schemaV1 (which kept the ledger key, the subject keys and the
// addresses in the clear).
const (
	schemaVersion = "2"
	schemaV1      = "1"
)

// DefaultTimeout is how long Open waits for another process to release
// the file when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// ErrLocked means another process, most often a running server, holds the
// database file. It comes wrapped together with optin.ErrUnavailable.
var ErrLocked = errors.New("filestore: in use by another process")

var (
	bucketMeta         = []byte("meta")
	bucketSubjects     = []byte("subjects")
	bucketEvents       = []byte("events")
	bucketChains       = []byte("chains")
	bucketSuppressions = []byte("suppressions")
	// bucketReceipts indexes the receipt chains as chains does the main
	// ones: subject id and absolute index to the global sequence.
	bucketReceipts = []byte("receipt_chains")
	// The delivery marks and their expiry index (deliveries.go).
	bucketDeliveries     = []byte("deliveries")
	bucketDeliveryExpiry = []byte("delivery_expiry")

	// The outbox, its delivery records and their index, the targets'
	// cursors and when each target last saved, and the inbound webhooks'
	// dedup marks with their expiry index (outbox.go, outboxdelivery.go,
	// outboxstale.go, seen.go).
	bucketOutbox           = []byte("outbox")
	bucketOutboxDeliveries = []byte("outbox_deliveries")
	bucketOutboxIndex      = []byte("outbox_index")
	bucketOutboxCursors    = []byte("outbox_cursors")
	bucketOutboxSaved      = []byte("outbox_saved")
	bucketSeen             = []byte("seen")
	bucketSeenExpiry       = []byte("seen_expiry")

	// The scheduled erasures by when they are due (erasures.go).
	bucketErasures = []byte("erasures")

	keySchema    = []byte("schema")
	keyCheck     = []byte("key_check")
	keyLedgerKey = []byte("ledger_key") // schema 1 only
)

// errClosed is returned by every method after Close.
var errClosed = fmt.Errorf("filestore: closed: %w", optin.ErrUnavailable)

// Options configure Open.
type Options struct {
	// Keys is the ledger key. Required: nothing personal in
	// the file can be read or written without it.
	Keys *optin.Keys
	// Now is the clock for times the changes do not carry (a suppression
	// added by an event without a time). Default time.Now.
	Now func() time.Time
	// Timeout is how long Open waits for the file lock held by another
	// process before it fails. Zero means DefaultTimeout.
	Timeout time.Duration
	// Progress, when not nil, hears how a migration of schema 1 goes.
	Progress func(done int)
	// Copying opens a file that is the target of an unfinished copy
	// (optin.Copy), which Open otherwise refuses with an error wrapping
	// optin.ErrCopying: only the copy itself sets it.
	Copying bool
}

// Store is the embedded optin.Store on one bbolt file.
type Store struct {
	db      *bolt.DB
	path    string
	keys    *optin.Keys
	now     func() time.Time
	copying bool
	closed  atomic.Bool
	// nextPurge is when a write next purges expired delivery marks, in
	// Unix nanoseconds by now.
	nextPurge atomic.Int64
	// file is the file Open found at path: its marker. lost is set once
	// the path no longer names it.
	file os.FileInfo
	lost atomic.Pointer[string]
}

var _ optin.Store = (*Store)(nil)

// Open opens or creates the database file at path (its directory is
// created when missing), and migrates a file of schema 1 (see
// migrate.go). It fails with an error wrapping optin.ErrUnavailable when
// another process holds the file longer than opts.Timeout, with one
// wrapping optin.ErrCorrupt when the file is not an optinproxy database,
// and with one wrapping optin.ErrBadKey when it was made with another
// ledger key.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("filestore: no path")
	}
	if opts.Keys == nil {
		return nil, errors.New("filestore: no ledger key")
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
	s, err := openFile(path, opts)
	switch {
	case errors.Is(err, errSchemaV1):
		err = migrateFile(path, opts)
	case errors.Is(err, errCompact):
		err = compactFile(path, opts.Timeout)
	default:
		return s, err
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: %s: %w", path, err)
	}
	return openFile(path, opts)
}

// What open says of a file of schema 1, and of one a migration left to
// be compacted.
var (
	errSchemaV1 = errors.New("filestore: schema 1")
	errCompact  = errors.New("filestore: to be compacted")
)

func openDB(path string, timeout time.Duration, readOnly bool) (*bolt.DB, error) {
	if !readOnly {
		if err := checkSize(path, timeout); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        timeout,
		ReadOnly:       readOnly,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (waited %s): %w", ErrLocked, path, timeout, optin.ErrUnavailable)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("filestore: %s is not an optinproxy database (%v): %w", path, err, optin.ErrCorrupt)
	case err != nil:
		return nil, fmt.Errorf("filestore: open %s: %w", path, err)
	}
	return db, nil
}

// checkSize refuses a file shorter than the pages its meta page counts,
// as a copy or a disk that ran out of space leaves it. Opened to write,
// bbolt rebuilds the free list (NoFreelistSync) by walking every page in
// a goroutine of its own, and panics, beyond any recover, on a page
// past the end; opened read-only it reads only the meta page.
func checkSize(path string, timeout time.Duration) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 {
		return nil // a new file, or one bbolt's own open reports on
	}
	db, err := openDB(path, timeout, true)
	if err != nil {
		return err
	}
	defer db.Close()
	var want int64
	if err := db.View(func(tx *bolt.Tx) error { want = tx.Size(); return nil }); err != nil {
		return fmt.Errorf("filestore: open %s: %w", path, err)
	}
	if fi.Size() < want {
		return fmt.Errorf("filestore: %s is cut short: %d bytes of the %d its pages take (restore it from a backup): %w", path, fi.Size(), want, optin.ErrCorrupt)
	}
	return nil
}

func openFile(path string, opts Options) (*Store, error) {
	db, err := openDB(path, opts.Timeout, false)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, keys: opts.Keys, now: opts.Now, copying: opts.Copying}
	if err := db.Update(s.init); err != nil {
		db.Close()
		if errors.Is(err, errSchemaV1) || errors.Is(err, errCompact) {
			return nil, err
		}
		return nil, fmt.Errorf("filestore: %s: %w", path, err)
	}
	if s.file, err = os.Stat(path); err != nil {
		db.Close()
		return nil, fmt.Errorf("filestore: %w", err)
	}
	return s, nil
}

// init creates the buckets on first open and checks the schema and the
// key check, writing both on first open.
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
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	check := s.keys.Get().Check()
	switch v := meta.Get(keySchema); {
	case v == nil:
		if err := meta.Put(keySchema, []byte(schemaVersion)); err != nil {
			return err
		}
		if err := meta.Put(keyCheck, []byte(check)); err != nil {
			return err
		}
	case string(v) == schemaV1:
		return errSchemaV1
	case string(v) != schemaVersion:
		return fmt.Errorf("%w: schema version %q, this program knows %q (and migrates %q)", optin.ErrCorrupt, v, schemaVersion, schemaV1)
	case meta.Get(keyCompact) != nil:
		return errCompact
	case string(meta.Get(keyCheck)) != check:
		return fmt.Errorf("%w: this store was made with another ledger key (its key check is %.8s…, the key file's %.8s…): use the key file made with this store",
			optin.ErrBadKey, meta.Get(keyCheck), check)
	case meta.Get(keyRestoring) != nil && !s.copying:
		return fmt.Errorf("%w (from %s): run optinproxy migrate again to finish it", optin.ErrCopying, meta.Get(keyRestoring))
	}
	for _, name := range [][]byte{bucketSubjects, bucketEvents, bucketChains, bucketReceipts, bucketSuppressions, bucketDeliveries, bucketDeliveryExpiry,
		bucketOutbox, bucketOutboxDeliveries, bucketOutboxIndex, bucketOutboxCursors, bucketOutboxSaved, bucketSeen, bucketSeenExpiry,
		bucketErasures} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// Ping reports whether the store is open and its path still names the
// file Open found: when the file was deleted or replaced, what this
// process writes goes to a file nobody will open again, so from then on
// Ping, Apply and Lookup fail with an error wrapping optin.ErrDataLost
// (and optin.ErrUnavailable: decisions fail closed) until a restart
// opens what is at the path.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.view(ctx, func(*bolt.Tx) error { return nil }); err != nil {
		return err
	}
	fi, err := os.Stat(s.path)
	switch {
	case err != nil:
		s.markLost(fmt.Sprintf("the store's file %s is gone (%v)", s.path, errors.Unwrap(err)))
	case !os.SameFile(fi, s.file):
		s.markLost(fmt.Sprintf("the store's file %s was replaced by another", s.path))
	}
	return s.lostErr()
}

func (s *Store) markLost(how string) {
	msg := fmt.Sprintf("%s (noticed %s): writes since would be lost; restart to open what is there now, or restore a backup",
		how, s.now().UTC().Format(time.RFC3339))
	s.lost.CompareAndSwap(nil, &msg)
}

func (s *Store) lostErr() error {
	if lost := s.lost.Load(); lost != nil {
		return fmt.Errorf("filestore: %w: %w: %s", optin.ErrDataLost, optin.ErrUnavailable, *lost)
	}
	return nil
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
	if err := s.lostErr(); err != nil {
		return err
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
		errors.Is(err, optin.ErrNotFound), errors.Is(err, optin.ErrCorrupt), errors.Is(err, optin.ErrUnavailable),
		errors.Is(err, optin.ErrBadInput), errors.Is(err, optin.ErrBadAddress), errors.Is(err, optin.ErrKeyGeneration),
		errors.Is(err, optin.ErrBadKey):
		return err
	}
	return fmt.Errorf("filestore: %w: %w", optin.ErrUnavailable, err)
}
