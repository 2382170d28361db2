package smtpproxy

import (
	"net/netip"
	"sync"
	"time"
)

// authLimiter counts failed logins per client address across
// connections, so that guessing passwords over many connections is
// stopped too: after limit failures within window, every AUTH from that
// address is refused, without checking the password, until window has
// passed since its last failure.
type authLimiter struct {
	limit  int
	window time.Duration

	mu    sync.Mutex
	fails map[netip.Addr]*authFails
}

type authFails struct {
	n    int
	last time.Time
}

// maxTracked bounds the addresses remembered; the oldest are forgotten
// first when it is reached.
const maxTracked = 10000

func newAuthLimiter(limit int, window time.Duration) *authLimiter {
	return &authLimiter{limit: limit, window: window, fails: make(map[netip.Addr]*authFails)}
}

// locked reports whether a is refused now.
func (l *authLimiter) locked(a netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[a]
	if f == nil {
		return false
	}
	if now.Sub(f.last) >= l.window {
		delete(l.fails, a)
		return false
	}
	return f.n >= l.limit
}

// failed records a failed login from a.
func (l *authLimiter) failed(a netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[a]
	if f == nil || now.Sub(f.last) >= l.window {
		if len(l.fails) >= maxTracked {
			l.sweep(now)
		}
		f = &authFails{}
		l.fails[a] = f
	}
	f.n++
	f.last = now
}

// succeeded forgets a's failures.
func (l *authLimiter) succeeded(a netip.Addr) {
	l.mu.Lock()
	delete(l.fails, a)
	l.mu.Unlock()
}

// sweep drops expired entries, and when none expired, the oldest one.
func (l *authLimiter) sweep(now time.Time) {
	var oldest netip.Addr
	var oldestAt time.Time
	for a, f := range l.fails {
		if now.Sub(f.last) >= l.window {
			delete(l.fails, a)
			continue
		}
		if oldestAt.IsZero() || f.last.Before(oldestAt) {
			oldest, oldestAt = a, f.last
		}
	}
	if len(l.fails) >= maxTracked {
		delete(l.fails, oldest)
	}
}
