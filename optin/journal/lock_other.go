//go:build !unix

package journal

import "os"

// lock does nothing where flock is missing: one process per journal is
// then the operator's to ensure.
func lock(*os.File) error { return nil }
