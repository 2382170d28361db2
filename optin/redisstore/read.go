package redisstore

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// Lookup reads, in one pipelined round trip, each address's record for
// q.Purpose, its suppressions and, with q.Message, its delivery mark (one
// HMGET per address), with the head of its receipt chain (LINDEX), which
// the write of the message's receipts then builds on without reading
// again. The subject ids are computed here with the ledger key. A mark
// counts while the store's clock (Options.Now) is before its until. A
// zero address is an error wrapping optin.ErrBadAddress.
func (s *Store) Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error) {
	out := make([]optin.Standing, len(q.Addresses))
	if len(q.Addresses) == 0 {
		return out, nil
	}
	sids := make([]string, len(q.Addresses))
	for i, a := range q.Addresses {
		if a.IsZero() {
			return nil, fmt.Errorf("redisstore: lookup: address %d: %w: empty", i, optin.ErrBadAddress)
		}
		sids[i] = s.sid(a)
	}
	l, all := s.lookupCmds(ctx, sids, q)
	p := s.rdb.Pipeline()
	_ = p.BatchProcess(ctx, all...)
	cmds, err := p.Exec(ctx)
	if err = pipeErr(cmds, err); err != nil {
		return nil, wrap("lookup", err)
	}
	now := s.now()
	var consents []optin.Consent // one allocation for the lookup's records
	for i, a := range q.Addresses {
		out[i].Address = a
		vals := l[i].state.Val()
		str := func(j int) string { v, _ := vals[j].(string); return v }
		if rec, ok := vals[lookupConsent].(string); ok {
			c, _, err := decodeConsent(a, q.Purpose, rec)
			if err != nil {
				return nil, fmt.Errorf("redisstore: lookup: %w", err)
			}
			if consents == nil {
				consents = make([]optin.Consent, len(q.Addresses))
			}
			consents[i] = c
			out[i].Consent = &consents[i]
		}
		for j, r := range reasons {
			if _, ok := vals[lookupSupp+j].(string); ok {
				out[i].Suppressions = append(out[i].Suppressions, r)
			}
		}
		if q.Message != "" {
			out[i].Delivered = l[i].mark.Err() == nil && now.UnixMilli() < int64(l[i].mark.Val())
		}
		if str(lookupKey) == "" && len(out[i].Suppressions) > 0 {
			// What an erasure left: its write must read the whole state.
			s.seen.drop(sids[i])
			continue
		}
		// A state without a wrapped key is taken for none: the write's
		// check then finds it and reads it.
		sn := seen{wrapped: str(lookupKey), at: now}
		sn.exists = sn.wrapped != ""
		var pruned int64
		if v := str(lookupPruned); v != "" { // ParseInt's error for "" is an allocation
			pruned, _ = strconv.ParseInt(v, 10, 64)
		}
		tail := l[i].tail.Val()
		sn.r = pruned + l[i].len.Val()
		if sn.head = receiptTailHash(tail); tail == "" {
			sn.head = str(lookupPrunedHead)
		}
		s.seen.put(sids[i], sn)
	}
	return out, nil
}

// The HMGET fields of a lookup, in this order: lookupFields, then the
// consent field of the purpose, then suppressFields.
const (
	lookupKey = iota
	lookupPruned
	lookupPrunedHead
	lookupConsent
	lookupSupp
)

var (
	lookupFields = []any{fieldWrappedKey, fieldPruned, fieldPrunedHead}
	// suppressFields are the suppression fields in the order of reasons.
	suppressFields = func() []any {
		f := make([]any, len(reasons))
		for i, r := range reasons {
			f[i] = suppressPrefix + string(r)
		}
		return f
	}()
	// lastIndex is LINDEX's -1, boxed once: an int64 outside 0–255
	// costs an allocation each time it becomes an interface.
	lastIndex any = int64(-1)
)

// lookupCmds are the commands of one subject in a lookup.
type lookupCmds struct {
	state redis.SliceCmd
	tail  redis.StringCmd
	len   redis.IntCmd
	mark  redis.FloatCmd // without a message, not sent
}

// lookupCmds builds, per subject id: HMGET of the state's fields, LINDEX
// and LLEN of the receipt list, and with q.Message ZSCORE of its mark.
// The commands are in one array, their arguments in one slice and their
// keys in one string: go-redis's command methods allocate each command,
// its arguments and each boxed string apart, some sixty allocations per
// address otherwise. go-redis writes a *string argument as the string,
// and finds a Cluster slot by it.
func (s *Store) lookupCmds(ctx context.Context, sids []string, q optin.LookupQuery) ([]lookupCmds, []redis.Cmder) {
	n := len(sids)
	l := make([]lookupCmds, n)
	perSubject, suffixes := 3, "sr" // state and receipts; with a message, marks too
	var member any
	if q.Message != "" {
		member = markMember(q.Message)
		perSubject, suffixes = 4, "srd"
	}
	keys, keysPer := s.keys.subjectKeys(sids, suffixes), len(suffixes)

	hmget := 2 + len(lookupFields) + 1 + len(suppressFields)
	args := make([]any, 0, n*(hmget+3+2+3))
	consent := any(consentPrefix + q.Purpose)
	cmds := make([]redis.Cmder, 0, n*perSubject)
	for i := range sids {
		k, c := keys[i*keysPer:], &l[i]
		at := len(args)
		args = append(args, "hmget", &k[0])
		args = append(args, lookupFields...)
		args = append(args, consent)
		args = append(args, suppressFields...)
		c.state = *redis.NewSliceCmd(ctx, args[at:len(args):len(args)]...)
		at = len(args)
		args = append(args, "lindex", &k[1], lastIndex)
		c.tail = *redis.NewStringCmd(ctx, args[at:len(args):len(args)]...)
		at = len(args)
		args = append(args, "llen", &k[1])
		c.len = *redis.NewIntCmd(ctx, args[at:len(args):len(args)]...)
		cmds = append(cmds, &c.state, &c.tail, &c.len)
		if member != nil {
			at = len(args)
			args = append(args, "zscore", &k[2], member)
			c.mark = *redis.NewFloatCmd(ctx, args[at:len(args):len(args)]...)
			cmds = append(cmds, &c.mark)
		}
	}
	return l, cmds
}

// Subject reads the subject's state and the most recent events of its
// two chains in one round trip (HGETALL and LRANGEs), and the events that
// recorded its consents, when older than those, in a second (LINDEX by
// the index kept in each record).
func (s *Store) Subject(ctx context.Context, a optin.Address, recent int) (*optin.SubjectView, error) {
	if a.IsZero() {
		return nil, fmt.Errorf("redisstore: subject: %w: empty", optin.ErrBadAddress)
	}
	recent = min(max(recent, 0), optin.MaxPageSize)
	sid := s.sid(a)
	var (
		stateCmd          *redis.MapStringStringCmd
		eventCmd, rcptCmd *redis.StringSliceCmd
		elen, rlen        *redis.IntCmd
	)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		stateCmd = p.HGetAll(ctx, s.keys.state(sid))
		if recent > 0 {
			eventCmd = p.LRange(ctx, s.keys.events(sid), int64(-recent), -1)
			// One more receipt than shown: the first one's prev.
			rcptCmd = p.LRange(ctx, s.keys.receipts(sid), int64(-recent-1), -1)
			// The lengths place them in their chains, for the key that
			// opens them (record.keyFrom).
			elen = p.LLen(ctx, s.keys.events(sid))
			rlen = p.LLen(ctx, s.keys.receipts(sid))
		}
		return nil
	})
	if err != nil {
		return nil, wrap("subject", err)
	}
	if len(stateCmd.Val()) == 0 {
		return nil, fmt.Errorf("redisstore: subject: %w", optin.ErrNotFound)
	}
	r, err := s.decodeState(sid, a, stateCmd.Val(), "", "", 0, 0)
	if err != nil {
		return nil, fmt.Errorf("redisstore: subject: %w", err)
	}
	view := &optin.SubjectView{Address: a, Erased: r.st.Key == nil, ErasureAt: r.st.ErasureAt}
	byID := map[string]optin.Event{}
	if recent > 0 {
		raws := eventCmd.Val()
		main, err := s.openEvents(sid, r.st.Key, r.keyFrom, elen.Val()-int64(len(raws)), raws)
		if err != nil {
			return nil, fmt.Errorf("redisstore: subject: %w", err)
		}
		rraws := rcptCmd.Val()
		first := r.r + rlen.Val() - int64(len(rraws)) // r.r counts the pruned ones here
		rcpts, err := s.openReceipts(sid, a, r.st.Key, r.keyFrom, first, rraws, stateCmd.Val()[fieldPrunedHead], int64(recent), s.names.resolver(ctx, s))
		if err != nil {
			return nil, fmt.Errorf("redisstore: subject: %w", err)
		}
		view.Events = mergeEvents(main, rcpts)
		view.Events = view.Events[max(0, len(view.Events)-recent):]
		for _, e := range main {
			byID[e.ID] = e
		}
	}
	if err := s.fetchRecording(ctx, sid, r, byID); err != nil {
		return nil, err
	}
	for _, c := range r.st.Consents {
		if e, ok := byID[c.EventID]; ok {
			c.Evidence = optin.EvidenceOf(e)
		}
		view.Consents = append(view.Consents, c)
	}
	sort.Slice(view.Consents, func(i, j int) bool { return view.Consents[i].Purpose < view.Consents[j].Purpose })
	for _, reason := range reasons {
		if t, ok := r.st.Suppressions[reason]; ok {
			view.Suppressions = append(view.Suppressions, optin.Suppression{Subject: a, Reason: reason, CreatedAt: t})
		}
	}
	return view, nil
}

// openEvents decodes and opens events of a subject's main chain, the
// first at index first.
func (s *Store) openEvents(sid string, key []byte, from [2]int64, first int64, raws []string) ([]optin.Event, error) {
	out := make([]optin.Event, 0, len(raws))
	for i, raw := range raws {
		e, err := s.open(sid, keyAt(key, from, 0, first+int64(i)), raw)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// openReceipts decodes and opens the last of raws, a stretch of a
// subject's receipt list whose first is at absolute index first: when
// raws holds more than want, the first only gives the second its prev;
// otherwise the stretch starts the list, and its first follows
// prunedHead (raw).
func (s *Store) openReceipts(sid string, a optin.Address, key []byte, from [2]int64, first int64, raws []string, prunedHead string, want int64, resolve func(string) (string, error)) ([]optin.Event, error) {
	prev := hexHash(prunedHead)
	if int64(len(raws)) > want {
		prev = hexHash(receiptTailHash(raws[0]))
		raws = raws[1:]
		first++
	}
	out := make([]optin.Event, 0, len(raws))
	for i, raw := range raws {
		se, err := decodeReceipt(sid, raw, prev, resolve)
		if err != nil {
			return nil, err
		}
		e, err := optin.Open(keyAt(key, from, 1, first+int64(i)), se)
		if err != nil {
			return nil, err
		}
		e.Subject = a
		if e.Erased {
			e.Subject = optin.Address{}
		}
		out = append(out, e)
		prev = se.Hash
	}
	return out, nil
}

// mergeEvents merges a subject's two chains by time, the main chain
// first at equal times, each in its own order.
func mergeEvents(main, rcpts []optin.Event) []optin.Event {
	out := make([]optin.Event, 0, len(main)+len(rcpts))
	i, j := 0, 0
	for i < len(main) || j < len(rcpts) {
		if j == len(rcpts) || i < len(main) && !rcpts[j].Time.Before(main[i].Time) {
			out = append(out, main[i])
			i++
		} else {
			out = append(out, rcpts[j])
			j++
		}
	}
	return out
}

// fetchRecording adds to byID the events that recorded r's consents and
// are not in it yet: by their index in one round trip, and should an
// index be unknown or not hold the event, by reading the whole list.
func (s *Store) fetchRecording(ctx context.Context, sid string, r *record, byID map[string]optin.Event) error {
	type want struct {
		id    string
		index int64
		cmd   *redis.StringCmd
	}
	var wants []*want
	scan := false
	for p, c := range r.st.Consents {
		if _, ok := byID[c.EventID]; ok || c.EventID == "" {
			continue
		}
		if idx := r.index[p]; idx >= 0 {
			wants = append(wants, &want{id: c.EventID, index: idx})
		} else {
			scan = true
		}
	}
	if len(wants) > 0 {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, w := range wants {
				w.cmd = p.LIndex(ctx, s.keys.events(sid), w.index)
			}
			return nil
		})
		if err = pipeErr(cmds, err); err != nil {
			return wrap("subject", err)
		}
		for _, w := range wants {
			e, err := s.open(sid, keyAt(r.st.Key, r.keyFrom, 0, w.index), w.cmd.Val())
			if err != nil || e.ID != w.id {
				scan = true
				continue
			}
			byID[e.ID] = e
		}
	}
	if !scan {
		return nil
	}
	all, err := s.rdb.LRange(ctx, s.keys.events(sid), 0, -1).Result()
	if err != nil {
		return wrap("subject", err)
	}
	for i, raw := range all {
		e, err := s.open(sid, keyAt(r.st.Key, r.keyFrom, 0, int64(i)), raw)
		if err != nil {
			return fmt.Errorf("redisstore: subject: %w", err)
		}
		byID[e.ID] = e
	}
	return nil
}

// open decodes and opens a stored event of subject sid's main chain.
func (s *Store) open(sid string, key []byte, raw string) (optin.Event, error) {
	se, err := decodeEvent(sid, raw)
	if err != nil {
		return optin.Event{}, err
	}
	return optin.Open(key, se)
}

// subjectKey reads and unwraps one subject's key and opens its address:
// nil and the zero address when it has none (erased, or never written).
func (s *Store) subjectKey(sid string, wrapped, sealed string) ([]byte, optin.Address, error) {
	if wrapped == "" {
		return nil, optin.Address{}, nil
	}
	key, err := s.ring.Unwrap(sid, []byte(wrapped))
	if err != nil {
		return nil, optin.Address{}, err
	}
	if sealed == "" {
		return key, optin.Address{}, nil
	}
	a, err := optin.OpenAddress(key, sid, []byte(sealed))
	return key, a, err
}

// nanos reads a Unix-nanosecond time from an HMGET value.
func nanos(v any) (time.Time, bool) {
	str, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n).UTC(), true
}

// hexHash is a raw hash in hex, "" for none.
func hexHash(raw string) string {
	if raw == "" {
		return ""
	}
	return fmt.Sprintf("%x", raw)
}
