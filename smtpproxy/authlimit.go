package smtpproxy

import (
	"net/netip"
	"sync"
	"time"
)

// authLimiter counts failed logins per client across connections, so
// that guessing passwords over many connections is stopped too: after
// limit failures within window, every AUTH from that client is refused,
// without checking the password, until window has passed since its last
// failure. A client is an IPv4 address, or an IPv6 /64 (see clientBlock).
type authLimiter struct {
	limit  int
	window time.Duration

	mu    sync.Mutex
	fails map[netip.Prefix]*authFails
}

type authFails struct {
	n    int
	last time.Time
}

// maxTracked bounds the clients remembered; the oldest are forgotten
// first when it is reached.
const maxTracked = 10000

func newAuthLimiter(limit int, window time.Duration) *authLimiter {
	return &authLimiter{limit: limit, window: window, fails: make(map[netip.Prefix]*authFails)}
}

// clientBlock is what failures are counted by: an IPv4 address (an
// IPv4-mapped IPv6 one too) by itself, an IPv6 address by its /64, the
// block a single host or customer is usually given, so that a client
// cannot escape the count by rotating through the addresses it holds.
func clientBlock(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64) // an invalid a gives the zero Prefix, one key for all
	return p
}

// locked reports whether a's client is refused now.
func (l *authLimiter) locked(a netip.Addr, now time.Time) bool {
	k := clientBlock(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[k]
	if f == nil {
		return false
	}
	if now.Sub(f.last) >= l.window {
		delete(l.fails, k)
		return false
	}
	return f.n >= l.limit
}

// failed records a failed login from a's client.
func (l *authLimiter) failed(a netip.Addr, now time.Time) {
	k := clientBlock(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[k]
	if f == nil || now.Sub(f.last) >= l.window {
		if len(l.fails) >= maxTracked {
			l.sweep(now)
		}
		f = &authFails{}
		l.fails[k] = f
	}
	f.n++
	f.last = now
}

// succeeded forgets the failures of a's client.
func (l *authLimiter) succeeded(a netip.Addr) {
	k := clientBlock(a)
	l.mu.Lock()
	delete(l.fails, k)
	l.mu.Unlock()
}

// sweep drops expired entries, and when none expired, the oldest one.
func (l *authLimiter) sweep(now time.Time) {
	var oldest netip.Prefix
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
