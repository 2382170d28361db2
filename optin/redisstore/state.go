package redisstore

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"optinproxy/optin"
)

// record is one subject's state hash, decoded, with what Apply needs to
// write back only what changed.
type record struct {
	st *optin.SubjectState
	// n is the number of events in the list, before the pending ones.
	n int64
	// index is the list index of each consent's event, -1 if unknown.
	index map[string]int64
	// fresh is true when nothing was stored.
	fresh bool
	// loaded is the state as read, to diff against.
	loadedKey   []byte
	loadedCons  map[string]optin.Consent
	loadedSupps map[optin.SuppressionReason]time.Time
	// pending are the events Apply sealed, in order.
	pending []*optin.SealedEvent
	// marks are the delivery marks of the applied changes, in order.
	marks []optin.Delivery
}

// decodeState reads a state hash (HGETALL) of subject sid and, when the
// caller needs the head, the last event of its list (tail, "" when none).
// a is the address the caller asked for; when zero, the stored one is
// parsed. An empty hash is a fresh state.
func decodeState(sid string, a optin.Address, m map[string]string, tail string) (*record, error) {
	r := &record{index: map[string]int64{}}
	if len(m) == 0 {
		r.st = optin.NewSubjectState(sid, a)
		r.fresh = true
		r.snapshot()
		return r, nil
	}
	bad := func(what string, err error) error {
		return fmt.Errorf("%w: subject %s: %s: %v", optin.ErrCorrupt, sid, what, err)
	}
	stored := m[fieldAddress]
	switch {
	case a.IsZero() && stored != "":
		var err error
		if a, err = optin.ParseAddress(stored); err != nil {
			return nil, bad("address", err)
		}
	case !a.IsZero() && stored != "" && stored != a.String():
		return nil, fmt.Errorf("%w: subject %s holds another address", optin.ErrCorrupt, sid)
	}
	r.st = optin.NewSubjectState(sid, a)
	if k, ok := m[fieldKey]; ok {
		if len(k) != optin.KeySize {
			return nil, bad("key", fmt.Errorf("%d bytes", len(k)))
		}
		r.st.Key = []byte(k)
	}
	if tail != "" {
		last, err := decodeEvent(sid, tail)
		if err != nil {
			return nil, err
		}
		r.st.Head = last.Hash
	}
	if n, ok := m[fieldCount]; ok {
		var err error
		if r.n, err = strconv.ParseInt(n, 10, 64); err != nil || r.n < 0 {
			return nil, bad("count", fmt.Errorf("%q", n))
		}
	}
	for f, v := range m {
		switch {
		case strings.HasPrefix(f, consentPrefix):
			purpose := f[len(consentPrefix):]
			c, idx, err := decodeConsent(a, purpose, v)
			if err != nil {
				return nil, err
			}
			r.st.Consents[purpose] = c
			r.index[purpose] = idx
		case strings.HasPrefix(f, suppressPrefix):
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, bad(f, err)
			}
			r.st.Suppressions[optin.SuppressionReason(f[len(suppressPrefix):])] = time.Unix(0, ns).UTC()
		}
	}
	r.snapshot()
	return r, nil
}

// snapshot remembers the state as loaded.
func (r *record) snapshot() {
	r.loadedKey = r.st.Key
	r.loadedCons = maps.Clone(r.st.Consents)
	r.loadedSupps = maps.Clone(r.st.Suppressions)
}

// apply applies ch, keeping the sealed event and its consent's index.
func (r *record) apply(ch optin.Change, now time.Time) (optin.Result, error) {
	sealed, res, err := r.st.Apply(ch, now)
	if err != nil || sealed == nil {
		return res, err
	}
	index := r.n + int64(len(r.pending))
	r.pending = append(r.pending, sealed)
	if ch.Consent != nil {
		r.index[ch.Consent.Purpose] = index
	}
	if ch.Delivered != nil {
		r.marks = append(r.marks, *ch.Delivered)
	}
	return res, nil
}

// changes returns the fields to set and to delete for the pending events.
func (r *record) changes() (set []any, del []string) {
	if len(r.pending) == 0 {
		return nil, nil
	}
	set = append(set, fieldCount, r.n+int64(len(r.pending)))
	if r.fresh {
		set = append(set, fieldAddress, r.st.Address.String())
	}
	if string(r.st.Key) != string(r.loadedKey) {
		set = append(set, fieldKey, r.st.Key)
	}
	for p, c := range r.st.Consents {
		if old, had := r.loadedCons[p]; !had || old.EventID != c.EventID {
			index, known := r.index[p]
			if !known {
				index = -1
			}
			set = append(set, consentPrefix+p, encodeConsent(c, index))
		}
	}
	for reason, t := range r.st.Suppressions {
		if old, had := r.loadedSupps[reason]; !had || !old.Equal(t) {
			set = append(set, suppressPrefix+string(reason), t.UnixNano())
		}
	}
	for reason := range r.loadedSupps {
		if _, has := r.st.Suppressions[reason]; !has {
			del = append(del, suppressPrefix+string(reason))
		}
	}
	return set, del
}

// suppressionsChanged reports whether the set of reasons changed.
func (r *record) suppressionsChanged() bool {
	if len(r.st.Suppressions) != len(r.loadedSupps) {
		return true
	}
	for reason := range r.st.Suppressions {
		if _, had := r.loadedSupps[reason]; !had {
			return true
		}
	}
	return false
}
