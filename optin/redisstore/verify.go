package redisstore

import (
	"context"
	"fmt"
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
	if err := s.eachSubjects(ctx, verifyBatch, v.check); err != nil {
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

// check verifies the subjects of one SCAN batch in one round trip.
func (v *verifier) check(ctx context.Context, rdb redis.Cmdable, batch []string) error {
	var sids []string
	v.mu.Lock()
	for _, sid := range batch {
		if !v.seen[sid] {
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
	rlists := make([]*redis.StringSliceCmd, len(sids))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range sids {
			states[i] = p.HMGet(ctx, v.s.keys.state(sid), fieldWrappedKey, fieldSealedAddress, fieldPruned, fieldPrunedHead)
			lists[i] = p.LRange(ctx, v.s.keys.events(sid), 0, -1)
			rlists[i] = p.LRange(ctx, v.s.keys.receipts(sid), 0, -1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, sid := range sids {
		vals, raws, rraws := states[i].Val(), lists[i].Val(), rlists[i].Val()
		str := func(j int) string { s, _ := vals[j].(string); return s }
		v.report.Subjects++
		v.report.Events += len(raws) + len(rraws)
		v.report.Receipts += len(rraws)
		at := brokenAt(sid, raws)
		if at == "" {
			at = receiptsBrokenAt(sid, str(3), rraws, v.s.names.resolver(ctx, v.s))
		}
		if at != "" {
			name := sid
			if _, a, err := v.s.subjectKey(sid, str(0), str(1)); err == nil && !a.IsZero() {
				name = a.String()
			}
			v.report.Broken = append(v.report.Broken, optin.BrokenChain{Subject: name, Event: at})
		}
	}
	return nil
}

// brokenAt returns where the main chain of subject sid breaks, "" when
// it holds: the id of the first event that is not intact (changed,
// moved, or removed from before it).
func brokenAt(sid string, raws []string) string {
	prev := ""
	for i, raw := range raws {
		e, err := decodeEvent(sid, raw)
		if err != nil {
			return fmt.Sprintf("#%d (does not decode)", i)
		}
		if !e.Intact(prev) {
			return e.ID
		}
		prev = e.Hash
	}
	return ""
}

// receiptsBrokenAt is brokenAt for the receipt chain, which starts after
// its pruned stretch, whose last receipt's hash is prunedHead (raw).
func receiptsBrokenAt(sid, prunedHead string, raws []string, resolve func(string) (string, error)) string {
	prev := hexHash(prunedHead)
	for i, raw := range raws {
		e, err := decodeReceipt(sid, raw, prev, resolve)
		if err != nil {
			return fmt.Sprintf("receipt #%d (does not decode)", i)
		}
		if !e.Intact(prev) {
			return e.ID
		}
		prev = e.Hash
	}
	return ""
}
