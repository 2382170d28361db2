//go:build unix

package journal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lock takes an exclusive lock on f, held until f is closed, so that two
// processes (or two Journals) never write one journal.
func lock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK):
		return fmt.Errorf("%w: %s", ErrLocked, f.Name())
	case err != nil:
		return fmt.Errorf("journal: lock %s: %w", f.Name(), err)
	}
	return nil
}
