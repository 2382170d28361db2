package journal

import (
	"context"
	"crypto/cipher"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"optinproxy/optin"
)

// Journal keeps the changes the store could not take and writes them to
// it later, in order. Open it, drain it (Drain) before the relay decides
// anything, run Run in a goroutine, and hand it to the relay in the
// store's place. All methods are safe for concurrent use. Close it after
// the relay stopped calling it.
type Journal struct {
	opts Options
	log  *slog.Logger
	aead cipher.AEAD
	f    *os.File
	side string // the side file, for damaged frames

	// ctx ends at Close, which then waits for wg: Run, a drain, a flush.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	// depth counts the changes in the journal or being written to it,
	// not yet applied; 0 means Apply and Lookup go to the store.
	depth     atomic.Int64
	journaled atomic.Int64
	setAside  atomic.Int64
	syncs     atomic.Int64
	// outage is true from the first change journaled until a drain
	// empties the journal: it keeps the log to one line each way.
	outage atomic.Bool

	mu       sync.Mutex // guards the fields below
	pending  []*commit  // waiting for the next write, in order
	flushing bool       // a flush goroutine runs
	broken   error      // a write failed: no more appends
	flight   *flight    // the drain that runs, if one does

	// fileMu serializes writes and truncation; size is the end of what
	// was written and synced (read without the lock).
	fileMu sync.Mutex
	size   atomic.Int64

	// off is where the next drain starts: everything before it is in
	// the store or set aside. Only the drain that runs uses it.
	off int64
}

// Open opens the journal at opts.Path, creating it when missing, and
// reads what it holds: Depth then counts the changes waiting from before
// (the caller drains them before the relay decides anything). A torn
// last frame, left by a crash in the middle of a write, is moved to the
// side file and cut off (see doc.go). A file held by another process is
// an error wrapping ErrLocked; one whose frames were sealed under another
// key, one wrapping optin.ErrBadKey.
func Open(opts Options) (*Journal, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	aead, err := newAEAD(opts.Key)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(opts.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	f, err := os.OpenFile(opts.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{opts: opts, log: opts.Logger.With("component", "journal"), aead: aead, f: f, side: opts.Path + ".damaged"}
	if err := j.start(dir); err != nil {
		f.Close()
		return nil, err
	}
	j.ctx, j.cancel = context.WithCancel(context.Background())
	return j, nil
}

// start locks the file, makes it private and durable, and recovers what
// it holds.
func (j *Journal) start(dir string) error {
	if err := lock(j.f); err != nil {
		return err
	}
	if err := j.f.Chmod(0o600); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return j.recover()
}

// recover counts the changes the file holds and cuts off a torn tail.
func (j *Journal) recover() error {
	info, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	sc := &scanner{r: j.f, aead: j.aead, end: info.Size()}
	var frames, changes, damaged int
	var last region
	for off := int64(0); off < sc.end; off = last.end {
		if last, err = sc.at(off); err != nil {
			return fmt.Errorf("journal: read: %w", err)
		}
		if last.damaged() {
			damaged++
			continue
		}
		frames++
		changes += len(last.changes)
	}
	if frames == 0 && damaged > 0 && sc.chained() > 1 {
		return fmt.Errorf("journal: %w: %s holds frames that do not open under this key; it was written under another ledger key (move it away to start without it)",
			optin.ErrBadKey, j.opts.Path)
	}
	size := sc.end
	if last.damaged() && last.end == sc.end && sc.end > 0 {
		// The end of a write that a crash interrupted: never
		// acknowledged, since Apply waits for the fsync.
		if err := j.putAside(io.NewSectionReader(j.f, last.off, last.end-last.off)); err != nil {
			return err
		}
		if err := j.f.Truncate(last.off); err != nil {
			return fmt.Errorf("journal: cut the torn tail: %w", err)
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.log.Error("journal ends in a torn frame, left by a crash while it was written; moved to the side file",
			"bytes", last.end-last.off, "why", last.why.Error(), "side_file", j.side)
		size = last.off
		damaged--
	}
	j.size.Store(size)
	j.depth.Store(int64(changes))
	if damaged > 0 {
		j.log.Error("journal holds damaged frames; the drain moves them to the side file", "regions", damaged)
	}
	if changes > 0 {
		j.outage.Store(true)
		j.log.Warn("journal holds changes from before; they are written to the store before anything is decided",
			"changes", changes, "frames", frames)
	}
	return nil
}

// putAside appends what r holds (a damaged region, or frames the store
// cannot take) to the side file, synced.
func (j *Journal) putAside(r io.Reader) error {
	side, err := os.OpenFile(j.side, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: side file: %w", err)
	}
	_, err = io.Copy(side, r)
	if err == nil {
		err = side.Sync()
	}
	if cerr := side.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: side file: %w", err)
	}
	j.setAside.Add(1)
	return nil
}

// Depth is the number of changes waiting in the journal (or being
// written to it), for a gauge: 0 while the store takes every write.
func (j *Journal) Depth() int { return int(j.depth.Load()) }

// Journaled is the number of changes this Journal ever wrote to the
// journal file, for a counter.
func (j *Journal) Journaled() int64 { return j.journaled.Load() }

// SetAside is the number of damaged regions or rejected frames this
// Journal moved to the side file (see doc.go), for a counter; any is
// worth an alert.
func (j *Journal) SetAside() int64 { return j.setAside.Load() }

// empty reports whether the file holds nothing and nothing waits.
func (j *Journal) empty() bool { return j.depth.Load() == 0 && j.size.Load() == 0 }

// Close stops Run and any drain, waits for writes under way, and closes
// the file (not the store); what it holds stays for the next Open. Apply
// and Drain fail with ErrClosed afterwards. Close the relay first.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed.Load() {
		j.mu.Unlock()
		return nil
	}
	j.closed.Store(true)
	j.cancel()
	j.mu.Unlock()
	j.wg.Wait()
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// syncDir makes a new entry in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
