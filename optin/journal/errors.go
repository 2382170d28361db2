package journal

import "errors"

// Sentinel errors of package journal. Functions wrap them with %w and a
// detail; callers compare with errors.Is.
var (
	// ErrClosed means the Journal was closed.
	ErrClosed = errors.New("journal: closed")

	// ErrLocked means another process holds the journal file.
	ErrLocked = errors.New("journal: in use by another process")

	// ErrWrite means changes could not be written to the journal: they
	// are neither in the store nor in the journal, and the caller must
	// not acknowledge them (the relay answers 451). After a failed write
	// or fsync the journal takes no more changes until it is opened
	// again; what it holds is still drained.
	ErrWrite = errors.New("journal: cannot write")
)
