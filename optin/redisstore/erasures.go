package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// DueErasures reads the index of scheduled erasures (a sorted set by due
// time) up to now, then each subject's key, address and schedule in one
// pipelined round trip. A member whose subject no longer has that
// erasure scheduled (a Cluster write whose index update was lost) is
// taken out of the index, so it is not listed again.
func (s *Store) DueErasures(ctx context.Context, now time.Time, limit int) ([]optin.DueErasure, error) {
	limit = optin.PageSize(limit)
	sids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.keys.erasures(), Start: "-inf",
		Stop: strconv.FormatInt(now.UnixMilli(), 10), ByScore: true, Count: int64(limit)}).Result()
	if err != nil || len(sids) == 0 {
		return nil, wrap("due erasures", err)
	}
	cmds := make([]*redis.SliceCmd, len(sids))
	piped, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range sids {
			cmds[i] = p.HMGet(ctx, s.keys.state(sid), fieldWrappedKey, fieldSealedAddress, fieldErasureAt)
		}
		return nil
	})
	if err = pipeErr(piped, err); err != nil {
		return nil, wrap("due erasures", err)
	}
	var out []optin.DueErasure
	var stale []any
	for i, sid := range sids {
		vals := cmds[i].Val()
		str := func(j int) string { v, _ := vals[j].(string); return v }
		at, scheduled := nanos(vals[2])
		if str(0) == "" || !scheduled {
			stale = append(stale, sid)
			continue
		}
		_, a, err := s.subjectKey(sid, str(0), str(1))
		if err != nil {
			return nil, fmt.Errorf("redisstore: due erasures: %w", err)
		}
		if a.IsZero() {
			stale = append(stale, sid)
			continue
		}
		if at.After(now) {
			continue // moved later; its member follows
		}
		out = append(out, optin.DueErasure{Subject: a, At: at})
	}
	if len(stale) > 0 {
		args := append([]any{now.UnixMilli()}, stale...)
		if err := unindexScript.Run(ctx, s.rdb, []string{s.keys.erasures()}, args...).Err(); err != nil {
			return nil, wrap("due erasures", err)
		}
	}
	return out, nil
}

// unindexScript takes stale members out of the index of scheduled
// erasures: KEYS[1] the index, ARGV[1] now in Unix ms, then the members.
// A member scored after now was scheduled again since it was read (a
// schedule is always later than its time of writing): it stays.
var unindexScript = redis.NewScript(`
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 0
`)
