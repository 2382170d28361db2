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
// q.Purpose and its suppressions, one HMGET per address, and with
// q.Message its delivery mark, one GET per address; the subject ids are
// computed here with the ledger key. A mark counts while the store's
// clock (Options.Now) is before its until. A zero address is an error
// wrapping optin.ErrBadAddress.
func (s *Store) Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error) {
	out := make([]optin.Standing, len(q.Addresses))
	if len(q.Addresses) == 0 {
		return out, nil
	}
	fields := make([]string, 0, 2+len(reasons))
	fields = append(fields, fieldAddress, consentPrefix+q.Purpose)
	for _, r := range reasons {
		fields = append(fields, suppressPrefix+string(r))
	}
	sids := make([]string, len(q.Addresses))
	for i, a := range q.Addresses {
		if a.IsZero() {
			return nil, fmt.Errorf("redisstore: lookup: address %d: %w: empty", i, optin.ErrBadAddress)
		}
		sids[i] = s.sid(a)
	}
	states := make([]*redis.SliceCmd, len(sids))
	var marks []*redis.StringCmd
	if q.Message != "" {
		marks = make([]*redis.StringCmd, len(sids))
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range sids {
			states[i] = p.HMGet(ctx, s.keys.state(sid), fields...)
			if marks != nil {
				marks[i] = p.Get(ctx, s.keys.delivered(sid, q.Message))
			}
		}
		return nil
	})
	if err = pipeErr(cmds, err); err != nil {
		return nil, wrap("lookup", err)
	}
	now := s.now()
	for i, a := range q.Addresses {
		out[i].Address = a
		vals := states[i].Val()
		if stored, ok := vals[0].(string); ok && stored != a.String() {
			return nil, fmt.Errorf("redisstore: lookup: %w: subject %s holds another address", optin.ErrCorrupt, sids[i])
		}
		if rec, ok := vals[1].(string); ok {
			c, _, err := decodeConsent(a, q.Purpose, rec)
			if err != nil {
				return nil, fmt.Errorf("redisstore: lookup: %w", err)
			}
			out[i].Consent = &c
		}
		for j, r := range reasons {
			if _, ok := vals[2+j].(string); ok {
				out[i].Suppressions = append(out[i].Suppressions, r)
			}
		}
		if marks != nil {
			out[i].Delivered = deliveredBy(marks[i].Val(), now)
		}
	}
	return out, nil
}

// Subject reads the subject's state and its most recent events in one
// round trip (HGETALL and LRANGE), and the events that recorded its
// consents, when older than those, in a second (LINDEX by the index kept
// in each record).
func (s *Store) Subject(ctx context.Context, a optin.Address, recent int) (*optin.SubjectView, error) {
	if a.IsZero() {
		return nil, fmt.Errorf("redisstore: subject: %w: empty", optin.ErrBadAddress)
	}
	sid := s.sid(a)
	var (
		stateCmd *redis.MapStringStringCmd
		eventCmd *redis.StringSliceCmd
	)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		stateCmd = p.HGetAll(ctx, s.keys.state(sid))
		if recent > 0 {
			eventCmd = p.LRange(ctx, s.keys.events(sid), int64(-recent), -1)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("subject", err)
	}
	if len(stateCmd.Val()) == 0 {
		return nil, fmt.Errorf("redisstore: subject: %w", optin.ErrNotFound)
	}
	r, err := decodeState(sid, a, stateCmd.Val(), "")
	if err != nil {
		return nil, fmt.Errorf("redisstore: subject: %w", err)
	}
	view := &optin.SubjectView{Address: a}
	byID := map[string]optin.Event{}
	if eventCmd != nil {
		for _, raw := range eventCmd.Val() {
			e, err := s.open(sid, r.st.Key, raw)
			if err != nil {
				return nil, fmt.Errorf("redisstore: subject: %w", err)
			}
			view.Events = append(view.Events, e)
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
			e, err := s.open(sid, r.st.Key, w.cmd.Val())
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
	for _, raw := range all {
		e, err := s.open(sid, r.st.Key, raw)
		if err != nil {
			return fmt.Errorf("redisstore: subject: %w", err)
		}
		byID[e.ID] = e
	}
	return nil
}

// open decodes and opens a stored event of subject sid.
func (s *Store) open(sid string, key []byte, raw string) (optin.Event, error) {
	se, err := decodeEvent(sid, raw)
	if err != nil {
		return optin.Event{}, err
	}
	return optin.Open(key, se)
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
