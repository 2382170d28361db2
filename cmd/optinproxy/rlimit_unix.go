//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// ensureFileLimit raises the soft limit on open files to the hard limit
// when it is below need, and warns when even that is not enough: past the
// limit, accept fails on every listener, the HTTP one included.
func ensureFileLimit(need uint64, log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the open-file limit", "err", err)
		return
	}
	if lim.Cur >= need {
		return
	}
	if lim.Cur < lim.Max {
		raised := syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("cannot raise the open-file limit", "from", lim.Cur, "to", lim.Max, "err", err)
		} else {
			log.Info("raised the open-file limit", "from", lim.Cur, "to", lim.Max)
			lim = raised
		}
	}
	if lim.Cur < need {
		log.Warn("the open-file limit is below what smtp.max_connections needs; raise it (ulimit -n, LimitNOFILE=) or lower smtp.max_connections",
			"limit", lim.Cur, "needed", need)
	}
}
