package redisstore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// metaPrunedFeed is the meta field that keeps how far PruneReceipts
// went through the feed.
const metaPrunedFeed = "pf"

// PruneReceipts drops, per SCAN batch in one round trip (pruneScript per
// subject), the receipts older than before from the front of every
// receipt list; each state keeps the count and the last hash of what
// went. Then it deletes the feed entries before that time that referred
// to receipts only (XDEL), from where the last run stopped: an entry
// that also names events of a main chain stays, and its receipt
// references lead nowhere.
func (s *Store) PruneReceipts(ctx context.Context, before time.Time) (int, error) {
	cut := before.UnixMilli()
	pruned := 0
	err := s.eachSubjects(ctx, rotateBatch, func(ctx context.Context, rdb redis.Cmdable, sids []string) error {
		calls := make([]scriptCall, len(sids))
		for i, sid := range sids {
			calls[i] = scriptCall{keys: []string{s.keys.state(sid), s.keys.receipts(sid)}, args: []any{cut}}
		}
		cmds, err := runEach(ctx, rdb, pruneScript, calls)
		if err != nil {
			return err
		}
		for _, c := range cmds {
			n, _ := c.Int()
			pruned += n
		}
		return nil
	})
	if err != nil {
		return pruned, wrap("prune", err)
	}
	return pruned, wrap("prune", s.pruneFeed(ctx, cut))
}

// pruneFeed deletes the feed entries whose every reference is a pruned
// receipt, from where the last run stopped (meta pf) up to the first
// that is not all pruned, and not past cut (Unix ms) by the entries' own
// time. An entry that also names events of a main chain stays; its
// receipt references lead nowhere.
func (s *Store) pruneFeed(ctx context.Context, cut int64) error {
	from, err := s.rdb.HGet(ctx, s.keys.meta(), metaPrunedFeed).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	start := "-"
	if from != "" {
		start = "(" + from
	}
	end := "(" + formatID(cut)
	for {
		msgs, err := s.rdb.XRangeN(ctx, s.keys.feed(), start, end, 200).Result()
		if err != nil || len(msgs) == 0 {
			return err
		}
		entries := make([][]ref, len(msgs))
		pruned := map[string]int64{}
		for i, m := range msgs {
			entries[i], _ = entryRefs(m)
			for _, r := range entries[i] {
				pruned[r.sid] = 0
			}
		}
		if err := s.prunedCounts(ctx, pruned); err != nil {
			return err
		}
		var gone []string
		last, stop := "", false
		for i, m := range msgs {
			main, all := false, len(entries[i]) > 0
			for _, r := range entries[i] {
				main = main || r.chain != chainReceipt
				all = all && r.chain == chainReceipt && r.index < pruned[r.sid]
			}
			switch {
			case all:
				gone = append(gone, m.ID)
			case !main:
				stop = true // receipts not pruned yet: come back to them
			}
			if stop {
				break
			}
			last = m.ID
		}
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			if len(gone) > 0 {
				p.XDel(ctx, s.keys.feed(), gone...)
			}
			if last != "" {
				p.HSet(ctx, s.keys.meta(), metaPrunedFeed, last)
			}
			return nil
		})
		if err != nil || stop || last == "" {
			return err
		}
		start = "(" + last
	}
}

// prunedCounts fills in how many receipts each subject has pruned.
func (s *Store) prunedCounts(ctx context.Context, pruned map[string]int64) error {
	cmds := map[string]*redis.StringCmd{}
	piped, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sid := range pruned {
			cmds[sid] = p.HGet(ctx, s.keys.state(sid), fieldPruned)
		}
		return nil
	})
	if err = pipeErr(piped, err); err != nil {
		return err
	}
	for sid, c := range cmds {
		pruned[sid], _ = strconv.ParseInt(c.Val(), 10, 64)
	}
	return nil
}

// formatID is the first stream id of a millisecond.
func formatID(ms int64) string { return strconv.FormatInt(ms, 10) + "-0" }
