package portal

import (
	"net/netip"
	"sync"
	"time"
)

// Limits bound the link requests at /p: a link mailed to an address is
// no one's to ask for over and over, and a client may not use the form
// to mail many addresses.
type Limits struct {
	// PerAddress is how many requests for one address are taken per
	// Window (default 3), whoever asks; PerClient how many from one
	// client (an IPv4 address, or an IPv6 /64) per Window (default 20).
	PerAddress int
	PerClient  int
	Window     time.Duration // default 1h
	// Tracked bounds the addresses and the clients counted per window
	// (default 10000 each): once full, new ones are refused until the
	// window turns, so a flood cannot grow the memory.
	Tracked int
}

func (l Limits) withDefaults() Limits {
	if l.PerAddress <= 0 {
		l.PerAddress = 3
	}
	if l.PerClient <= 0 {
		l.PerClient = 20
	}
	if l.Window <= 0 {
		l.Window = time.Hour
	}
	if l.Tracked <= 0 {
		l.Tracked = 10000
	}
	return l
}

// limits are the two counters of the request form.
type limits struct {
	address, client *window
}

func newLimits(l Limits) *limits {
	l = l.withDefaults()
	return &limits{
		address: &window{limit: l.PerAddress, length: l.Window, max: l.Tracked},
		client:  &window{limit: l.PerClient, length: l.Window, max: l.Tracked},
	}
}

// allow counts one request of client for address (a hash of it) and
// reports whether both are within their limits. A client over its limit
// is not counted against the address.
func (l *limits) allow(client, address string, now time.Time) bool {
	return l.client.allow(clientKey(client), now) && l.address.allow(address, now)
}

// clientKey is what a client is counted by: its IPv4 address, or the /64
// of its IPv6 address (one host commonly holds a whole /64).
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// window counts requests per key in fixed windows: at most limit per key
// per length, and at most max keys at once. Safe for concurrent use.
type window struct {
	limit  int
	length time.Duration
	max    int

	mu     sync.Mutex
	start  time.Time
	counts map[string]int
}

func (w *window) allow(key string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil || !now.Before(w.start.Add(w.length)) || now.Before(w.start) {
		w.start, w.counts = now, map[string]int{}
	}
	n, seen := w.counts[key]
	if n >= w.limit || (!seen && len(w.counts) >= w.max) {
		return false
	}
	w.counts[key] = n + 1
	return true
}
