package redisstore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"optinproxy/optin"
)

// record is one subject's state hash, decoded, with what Apply needs to
// write back only what changed and to check that nobody wrote between.
type record struct {
	st *optin.SubjectState
	// exists is false when no state hash was found: the write creates it
	// and checks that it still does not exist.
	exists bool
	// wrapped is the stored wrapped key; nil for a new subject, and once
	// erased. wrappedSeen is the one read, which the write checks.
	wrapped, wrappedSeen []byte
	// keyFrom is where the events sealed under the subject key start:
	// keyFrom[0] in the main chain, keyFrom[1] in the receipt chain
	// (absolute). The events before were sealed under a key an erasure
	// destroyed (the subject came back since). keyFromNew is set when a
	// fresh key of this write moves it.
	keyFrom    [2]int64
	keyFromNew bool
	// erased is set when a change of this write erased the subject.
	erased bool
	// n is the length of the main chain, r the receipts ever appended
	// (pruned ones included), both before the pending events.
	n, r int64
	// index is the list index of each consent's event, -1 if unknown.
	index map[string]int64
	// headSeen and receiptHeadSeen are the chain heads as read, which
	// the write checks (raw; "" for an empty chain).
	headSeen, receiptHeadSeen string
	// knownHead tells whether headSeen was read: a record built from
	// what a lookup cached knows the receipt chain only.
	knownHead bool
	// loaded is the state as read, to diff against.
	loadedCons    map[string]optin.Consent
	loadedSupps   map[optin.SuppressionReason]time.Time
	loadedErasure time.Time
	// pending are the events Apply sealed, in order; receipts apart.
	pending, receipts []*optin.SealedEvent
	// marks are the delivery marks of the applied changes, in order.
	marks []optin.Delivery
	// ids are the event ids the chains hold with where and what they
	// are, read for changes marked Once and after a conflict or a lost
	// reply; nil when not read.
	ids map[string]stored
}

// stored is where an event is in its subject's chains, and its hash.
type stored struct {
	ref  ref
	hash string
}

// decodeState reads a state hash (HGETALL) of subject sid with the last
// entries of its two lists (etail, rtail; "" when empty) and their
// lengths (elen, rlen). a is the address the caller asked for; when
// zero, the sealed one is opened. An empty hash is a new subject.
func (s *Store) decodeState(sid string, a optin.Address, m map[string]string, etail, rtail string, elen, rlen int64) (*record, error) {
	r := &record{index: map[string]int64{}, knownHead: true}
	if len(m) == 0 {
		r.st = optin.NewSubjectState(sid, a)
		r.snapshot()
		return r, nil
	}
	bad := func(what string, err error) error {
		return fmt.Errorf("%w: subject %s: %s: %v", optin.ErrCorrupt, sid, what, err)
	}
	r.exists = true
	var key []byte
	if w, ok := m[fieldWrappedKey]; ok {
		r.wrapped = []byte(w)
		r.wrappedSeen = r.wrapped
		var err error
		if key, err = s.ring.Unwrap(sid, r.wrapped); err != nil {
			return nil, err
		}
	}
	if a.IsZero() {
		p, ok := m[fieldSealedAddress]
		if !ok || key == nil {
			return nil, fmt.Errorf("%w: subject %s has no readable address", optin.ErrNotFound, sid)
		}
		var err error
		if a, err = optin.OpenAddress(key, sid, []byte(p)); err != nil {
			return nil, err
		}
	}
	r.st = optin.NewSubjectState(sid, a)
	r.st.Key = key
	var err error
	if r.keyFrom, err = parseKeyFrom(m[fieldKeyFrom]); err != nil {
		return nil, bad(fieldKeyFrom, err)
	}
	if v, ok := m[fieldErasureAt]; ok {
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, bad(fieldErasureAt, err)
		}
		r.st.ErasureAt = time.Unix(0, ns).UTC()
	}
	r.headSeen = tailHash(etail)
	r.st.Head = hex.EncodeToString([]byte(r.headSeen))
	r.receiptHeadSeen = receiptTailHash(rtail)
	if rtail == "" {
		r.receiptHeadSeen = m[fieldPrunedHead]
	}
	r.st.ReceiptHead = hex.EncodeToString([]byte(r.receiptHeadSeen))
	r.n, r.r = elen, rlen
	if v, ok := m[fieldPruned]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, bad(fieldPruned, fmt.Errorf("%q", v))
		}
		r.r += n
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
	r.loadedCons = maps.Clone(r.st.Consents)
	r.loadedSupps = maps.Clone(r.st.Suppressions)
	r.loadedErasure = r.st.ErasureAt
}

// parseKeyFrom reads the ke field, "E.R"; "" is the start of both
// chains.
func parseKeyFrom(v string) ([2]int64, error) {
	var out [2]int64
	if v == "" {
		return out, nil
	}
	e, rc, ok := strings.Cut(v, ".")
	var err1, err2 error
	out[0], err1 = strconv.ParseInt(e, 10, 64)
	out[1], err2 = strconv.ParseInt(rc, 10, 64)
	if !ok || err1 != nil || err2 != nil || out[0] < 0 || out[1] < 0 {
		return [2]int64{}, fmt.Errorf("%q", v)
	}
	return out, nil
}

// keyAt is the key that opens the event at index i of chain c (0 the
// main chain, 1 the receipts, absolute): nil before keyFrom.
func keyAt(key []byte, from [2]int64, c int, i int64) []byte {
	if i < from[c] {
		return nil
	}
	return key
}

// apply applies ch, keeping the sealed event and its consent's index.
// A change the rules refuse (optin.ErrErased) gets the error in its
// result, and the batch goes on.
func (r *record) apply(ch optin.Change, now time.Time) (optin.Result, error) {
	if _, there := r.ids[ch.Event.ID]; ch.Once && there {
		return optin.Result{}, nil // a replay of what is there
	}
	hadKey := r.st.Key != nil
	sealed, res, err := r.st.Apply(ch, now)
	if errors.Is(err, optin.ErrErased) {
		res.Refused = err
		return res, nil
	}
	if err != nil || sealed == nil {
		return res, err
	}
	main, rcpt := r.n+int64(len(r.pending)), r.r+int64(len(r.receipts))
	switch haveKey := r.st.Key != nil; {
	case hadKey && !haveKey:
		r.erased, r.wrapped = true, nil
	case !hadKey && haveKey && (r.exists || main+rcpt > 0):
		// Back after an erasure: the fresh key opens the events from
		// this one on.
		r.keyFrom, r.keyFromNew = [2]int64{main, rcpt}, true
	}
	if sealed.Receipt {
		r.receipts = append(r.receipts, sealed)
	} else {
		index := r.n + int64(len(r.pending))
		r.pending = append(r.pending, sealed)
		if ch.Consent != nil {
			r.index[ch.Consent.Purpose] = index
		}
	}
	if ch.Delivered != nil {
		r.marks = append(r.marks, *ch.Delivered)
	}
	return res, nil
}

// landed returns, when the chains hold the event of a change that an
// earlier try of this call sent, that try's result: the one whose event
// has the stored hash.
func (r *record) landed(it *item) (optin.Result, ref, bool) {
	if len(it.tried) == 0 {
		return optin.Result{}, ref{}, false
	}
	at, there := r.ids[it.ch.Event.ID]
	if !there {
		return optin.Result{}, ref{}, false
	}
	for i := len(it.tried) - 1; i >= 0; i-- {
		if it.tried[i].Event.Hash == at.hash {
			return it.tried[i], at.ref, true
		}
	}
	// Not reached: every write of the change is one of its tries. Its
	// event is there all the same, so it must not be appended again.
	res := it.tried[len(it.tried)-1]
	res.Event.Hash = at.hash
	return res, at.ref, true
}

// dirty reports whether the record has anything to write.
func (r *record) dirty() bool { return len(r.pending)+len(r.receipts) > 0 }

// fields returns the state fields to set and to delete for the pending
// events.
func (r *record) fields(keys *optin.Keyring, gen uint32) (set []string, del []string) {
	if !r.dirty() {
		return nil, nil
	}
	switch {
	case r.st.Key == nil:
		if r.wrappedSeen != nil {
			del = append(del, fieldWrappedKey, fieldSealedAddress) // erased
		}
	case r.wrapped == nil:
		r.wrapped, _ = keys.WrapAt(gen, r.st.ID, r.st.Key)
		set = append(set, fieldWrappedKey, string(r.wrapped),
			fieldSealedAddress, string(optin.SealAddress(r.st.Key, r.st.ID, r.st.Address)))
		if r.keyFromNew {
			set = append(set, fieldKeyFrom, fmt.Sprintf("%d.%d", r.keyFrom[0], r.keyFrom[1]))
		}
	}
	if !r.st.ErasureAt.Equal(r.loadedErasure) {
		if r.st.ErasureAt.IsZero() {
			del = append(del, fieldErasureAt)
		} else {
			set = append(set, fieldErasureAt, strconv.FormatInt(r.st.ErasureAt.UnixNano(), 10))
		}
	}
	for p := range r.loadedCons {
		if _, still := r.st.Consents[p]; !still {
			del = append(del, consentPrefix+p)
		}
	}
	for p, c := range r.st.Consents {
		// A notice keeps the record's event and changes NoticedAt only.
		if old, had := r.loadedCons[p]; !had || old.EventID != c.EventID || !old.NoticedAt.Equal(c.NoticedAt) {
			index, known := r.index[p]
			if !known {
				index = -1
			}
			set = append(set, consentPrefix+p, string(encodeConsent(c, index)))
		}
	}
	for reason, t := range r.st.Suppressions {
		if old, had := r.loadedSupps[reason]; !had || !old.Equal(t) {
			set = append(set, suppressPrefix+string(reason), strconv.FormatInt(t.UnixNano(), 10))
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

// untilMilli is a mark's until in Unix milliseconds, rounded up, so that
// a mark never ends before its Until.
func untilMilli(until time.Time) int64 {
	return until.Add(time.Millisecond - 1).UnixMilli()
}
