package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// verifyBatch is how many subjects Verify reads per round trip.
const verifyBatch = 100

// Verify SCANs the state keys (on Cluster, on every master) and checks
// each subject's event list: every event intact and following the one
// before (optin.SealedEvent.Intact), the last one the state's head, the
// count the state's. A subject is reported once, at the first event
// where its chain breaks. Keys SCAN returns twice are counted once.
func (s *Store) Verify(ctx context.Context) (optin.VerifyReport, error) {
	v := &verifier{s: s, seen: map[string]bool{}, report: optin.VerifyReport{Broken: []optin.BrokenChain{}}}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return v.scan(ctx, node)
		})
	} else {
		err = v.scan(ctx, s.rdb)
	}
	if err != nil {
		return optin.VerifyReport{}, wrap("verify", err)
	}
	return v.report, nil
}

type verifier struct {
	s      *Store
	mu     sync.Mutex
	seen   map[string]bool
	report optin.VerifyReport
}

// scan walks the state keys of one node.
func (v *verifier) scan(ctx context.Context, rdb redis.Cmdable) error {
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, v.s.keys.statePattern(), verifyBatch).Result()
		if err != nil {
			return err
		}
		if err := v.check(ctx, rdb, keys); err != nil {
			return err
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// check verifies the subjects of one SCAN batch in one round trip.
func (v *verifier) check(ctx context.Context, rdb redis.Cmdable, keys []string) error {
	var sids []string
	v.mu.Lock()
	for _, k := range keys {
		if sid, ok := v.s.keys.sidOf(k); ok && !v.seen[sid] {
			v.seen[sid] = true
			sids = append(sids, sid)
		}
	}
	v.mu.Unlock()
	if len(sids) == 0 {
		return nil
	}
	states := make([]*redis.SliceCmd, len(sids))
	lists := make([]*redis.StringSliceCmd, len(sids))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range sids {
			states[i] = p.HMGet(ctx, v.s.keys.state(sid), fieldAddress, fieldCount)
			lists[i] = p.LRange(ctx, v.s.keys.events(sid), 0, -1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, sid := range sids {
		vals, raws := states[i].Val(), lists[i].Val()
		v.report.Subjects++
		v.report.Events += len(raws)
		if at := brokenAt(sid, vals, raws); at != "" {
			name, _ := vals[0].(string)
			if name == "" {
				name = sid
			}
			v.report.Broken = append(v.report.Broken, optin.BrokenChain{Subject: name, Event: at})
		}
	}
	return nil
}

// brokenAt returns where the chain of subject sid breaks, "" when it
// holds: the id of the first event that is not intact, or, when the
// events hold but the state counts more (events cut off the end) or
// fewer, a note saying so.
func brokenAt(sid string, state []any, raws []string) string {
	prev, lastID := "", ""
	for i, raw := range raws {
		e, err := decodeEvent(sid, raw)
		if err != nil {
			return fmt.Sprintf("#%d (does not decode)", i)
		}
		if !e.Intact(prev) {
			return e.ID
		}
		prev, lastID = e.Hash, e.ID
	}
	count, _ := state[1].(string)
	switch {
	case count == strconv.Itoa(len(raws)):
		return ""
	case lastID == "":
		return fmt.Sprintf("count: the state counts %s events, the list is empty", count)
	}
	return fmt.Sprintf("count: the state counts %s events, the list holds %d, the last %s", count, len(raws), lastID)
}
