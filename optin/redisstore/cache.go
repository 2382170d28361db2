package redisstore

import (
	"sync"
	"time"
)

// seen is what a lookup learned of a subject's receipt chain, so that
// the receipts of the message being relayed can be written without
// reading again: one lookup round trip and one write per message.
// Nothing here is trusted: the write checks the head it was built
// on and reads again when it moved.
type seen struct {
	exists  bool
	wrapped string
	// r is the receipts ever appended; head the last one's hash, raw.
	r    int64
	head string
	at   time.Time
}

// seenCache keeps the latest seen per subject for a short while. Two
// maps take turns: a lookup writes to the newer, a write reads both, and
// when the newer is full the older is dropped, so memory stays bounded
// without bookkeeping per entry. Safe for concurrent use.
type seenCache struct {
	mu       sync.Mutex
	cur, old map[string]seen
	max      int
	ttl      time.Duration
}

func newSeenCache(max int, ttl time.Duration) *seenCache {
	return &seenCache{cur: map[string]seen{}, old: map[string]seen{}, max: max, ttl: ttl}
}

// put records what was seen of sid, unless a newer state of its chain
// (more receipts) is recorded already.
func (c *seenCache) put(sid string, s seen) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.getLocked(sid); ok && prev.exists && prev.r > s.r {
		return
	}
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[string]seen, c.max)
	}
	c.cur[sid] = s
}

// get returns what was last seen of sid, if it is fresh.
func (c *seenCache) get(sid string, now time.Time) (seen, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.getLocked(sid)
	if !ok || now.Sub(s.at) > c.ttl {
		return seen{}, false
	}
	return s, true
}

func (c *seenCache) getLocked(sid string) (seen, bool) {
	if s, ok := c.cur[sid]; ok {
		return s, true
	}
	s, ok := c.old[sid]
	return s, ok
}

// drop forgets sid (its chain moved under us).
func (c *seenCache) drop(sid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, sid)
	delete(c.old, sid)
}
