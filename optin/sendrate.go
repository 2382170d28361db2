package optin

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// rateHours is the window of DomainRates: mailbox providers judge a
// sender's complaint rate by the day.
const rateHours = 24

// rateShards spreads the domains over locks, so that relay goroutines
// counting copies for different domains seldom wait for each other.
const rateShards = 16

// maxRateDomains bounds the domains one shard keeps; past it, a stale
// window is dropped, and when none is stale the copies and complaints of
// a new domain count under OtherDomain. From domains are a sender's own,
// so the bound is only reached by a misuse.
const maxRateDomains = 1024

// OtherDomain is the domain DomainRates counts under when it keeps too
// many domains already.
const OtherDomain = "other"

// DomainRates counts, per sending (From) domain, the copies relayed and
// the spam complaints received over the last 24 hours, in hourly buckets,
// so that a complaint rate can be watched against the mailbox providers'
// limits (Gmail: stay under 0.1%, never reach 0.3%). It is in memory and
// per instance: several instances each see their own share. Safe for
// concurrent use; Sent is cheap enough for every relayed copy.
type DomainRates struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [rateShards]rateShard
}

type rateShard struct {
	mu      sync.Mutex
	domains map[string]*rateWindow
}

// rateWindow holds one domain's hourly buckets: bucket h%24 counts the
// hour h (hours since the Unix epoch) when hour[h%24] == h.
type rateWindow struct {
	hour       [rateHours]int64
	sent       [rateHours]int
	complaints [rateHours]int
}

// NewDomainRates makes an empty counter; now is time.Now when nil.
func NewDomainRates(now func() time.Time) *DomainRates {
	if now == nil {
		now = time.Now
	}
	r := &DomainRates{now: now, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].domains = map[string]*rateWindow{}
	}
	return r
}

// Sent counts n copies relayed for domain (the From address's domain).
func (r *DomainRates) Sent(domain string, n int) {
	if n <= 0 {
		return
	}
	r.update(domain, func(w *rateWindow, b int) { w.sent[b] += n })
}

// Complaint counts one spam complaint for domain and returns the domain's
// rate over the last 24 hours, with the copies and complaints it is
// made of. With no copies counted the rate is 0: there is nothing to
// divide by (mail sent around this instance).
func (r *DomainRates) Complaint(domain string) (rate float64, sent, complaints int) {
	r.update(domain, func(w *rateWindow, b int) { w.complaints[b]++ })
	return r.Rate(domain)
}

// Rate returns domain's complaint rate over the last 24 hours without
// counting anything.
func (r *DomainRates) Rate(domain string) (rate float64, sent, complaints int) {
	domain = strings.ToLower(domain)
	hour := r.hour()
	s := r.shard(domain)
	s.mu.Lock()
	w := s.domains[domain]
	if w == nil {
		w = s.domains[OtherDomain]
		if w == nil || !s.full() {
			s.mu.Unlock()
			return 0, 0, 0
		}
	}
	for b := range rateHours {
		if w.hour[b] > hour-rateHours && w.hour[b] <= hour {
			sent += w.sent[b]
			complaints += w.complaints[b]
		}
	}
	s.mu.Unlock()
	if sent > 0 {
		rate = float64(complaints) / float64(sent)
	}
	return rate, sent, complaints
}

func (r *DomainRates) hour() int64 { return r.now().Unix() / 3600 }

func (r *DomainRates) shard(domain string) *rateShard {
	return &r.shards[maphash.String(r.seed, domain)%rateShards]
}

// update finds (or makes) domain's window, clears the current hour's
// bucket when it last counted an older hour, and calls f on it.
func (r *DomainRates) update(domain string, f func(w *rateWindow, bucket int)) {
	domain = strings.ToLower(domain)
	hour := r.hour()
	b := int(hour % rateHours)
	s := r.shard(domain)
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.domains[domain]
	if w == nil {
		if s.full() {
			s.sweep(hour)
		}
		if s.full() {
			domain = OtherDomain
		}
		if w = s.domains[domain]; w == nil {
			w = &rateWindow{}
			s.domains[domain] = w
		}
	}
	if w.hour[b] != hour {
		w.hour[b], w.sent[b], w.complaints[b] = hour, 0, 0
	}
	f(w, b)
}

func (s *rateShard) full() bool { return len(s.domains) >= maxRateDomains }

// sweep drops the windows with nothing counted in the last 24 hours.
func (s *rateShard) sweep(hour int64) {
	for d, w := range s.domains {
		stale := true
		for b := range rateHours {
			if w.hour[b] > hour-rateHours {
				stale = false
				break
			}
		}
		if stale {
			delete(s.domains, d)
		}
	}
}
