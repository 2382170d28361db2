package redisstore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// forgetScript forgets a target not seen since the cut, unless it saved
// after PruneOutbox read when it last did: KEYS[1] its cursor, KEYS[2]
// the time of its last save; ARGV[1] that time as read. It answers the
// cursor when the target saved since (it is live after all), nil when it
// forgot it.
var forgetScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return false
end
return redis.call('GET', KEYS[1])
`)

// heldBack forgets the targets not seen since before (their cursor and
// sign of life; their records are pruned as any others) and returns the
// oldest cursor of the others, "+" when there is none: PruneOutbox
// deletes no item past it. A cursor with no sign of life (saved by a
// version that kept none) gets one now, so that its target has a whole
// retention to show up. Each target's keys are read in one pipeline;
// each stale one takes a script call in its slot.
func (s *Store) heldBack(ctx context.Context, targets []string, before time.Time) (string, error) {
	if len(targets) == 0 {
		return "+", nil
	}
	cursors, saved := make([]*redis.StringCmd, len(targets)), make([]*redis.StringCmd, len(targets))
	piped, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, t := range targets {
			cursors[i], saved[i] = p.Get(ctx, s.keys.cursor(t)), p.Get(ctx, s.keys.saved(t))
		}
		return nil
	})
	if err := pipeErr(piped, err); err != nil {
		return "", err
	}
	now := strconv.FormatInt(s.now().UnixMilli(), 10)
	held := "+"
	for i, t := range targets {
		cursor, err := cursors[i].Result()
		if err != nil {
			cursor = "" // none
		}
		last, err := saved[i].Result()
		switch {
		case err != nil && cursor != "":
			if err := s.rdb.SetNX(ctx, s.keys.saved(t), now, 0).Err(); err != nil {
				return "", err
			}
		case err == nil && stale(last, before):
			cursor, err = forgetScript.Run(ctx, s.rdb, []string{s.keys.cursor(t), s.keys.saved(t)}, last).Text()
			if errors.Is(err, redis.Nil) {
				continue // forgotten
			}
			if err != nil {
				return "", err
			}
		}
		if streamID.MatchString(cursor) && (held == "+" || streamBefore(cursor, held)) {
			held = cursor
		}
	}
	return held, nil
}

// stale reports whether a target whose last save was at last (Unix ms)
// was not seen since before. A value that does not parse is stale: the
// target saves a good one if it is live.
func stale(last string, before time.Time) bool {
	ms, err := strconv.ParseInt(last, 10, 64)
	return err != nil || time.UnixMilli(ms).Before(before)
}
