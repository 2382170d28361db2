package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// pruneChunk is how many records or items PruneOutbox looks at per
// round trip.
const pruneChunk = 500

// dropScript deletes a target's records that are still as read: KEYS[1]
// the records hash, KEYS[2] the index of their status; ARGV per record
// its event id and its value as read. A record saved since (replayed,
// say) stays. It answers how many it deleted.
var dropScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  local id, v = ARGV[i], ARGV[i+1]
  if redis.call('HGET', KEYS[1], id) == v then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], string.sub(v, 2, 9) .. id)
    n = n + 1
  end
end
return n
`)

// PruneOutbox deletes the dead and retired records done before before
// (a record without DoneAt counts from its Created); then it forgets the
// cursor of each target that has not saved since before and deletes the
// outbox items queued before before that every cursor left has passed (a
// target without a cursor holds nothing back). It returns how many
// records and items went. Pending records stay. The dedup marks need no
// pruning: Redis expires them. A forgotten target stays in the targets
// set (a few bytes), which also lists it while records of it are left.
func (s *Store) PruneOutbox(ctx context.Context, before time.Time) (int, error) {
	targets, err := s.rdb.SMembers(ctx, s.keys.targets()).Result()
	if err != nil {
		return 0, wrap("prune outbox", err)
	}
	n := 0
	for _, t := range targets {
		for _, st := range []optin.DeliveryStatus{optin.DeliveryDead, optin.DeliveryRetired} {
			gone, err := s.pruneRecords(ctx, t, st, before)
			n += gone
			if err != nil {
				return n, wrap("prune outbox", err)
			}
		}
	}
	gone, err := s.pruneItems(ctx, targets, before)
	return n + gone, wrap("prune outbox", err)
}

// pruneRecords deletes target's records of status st done before
// before; it reads those created before it, a chunk at a time.
func (s *Store) pruneRecords(ctx context.Context, target string, st optin.DeliveryStatus, before time.Time) (int, error) {
	index, end := s.keys.statusIndex(target, st), "("+createdKey(before)
	from, n := "-", 0
	for {
		members, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: index, Start: from, Stop: end, ByLex: true, Count: pruneChunk}).Result()
		if err != nil || len(members) == 0 {
			return n, err
		}
		ids := make([]string, len(members))
		for i, m := range members {
			ids[i] = m[min(8, len(m)):]
		}
		vals, err := s.rdb.HMGet(ctx, s.keys.records(target), ids...).Result()
		if err != nil {
			return n, err
		}
		var args []any
		for i, v := range vals {
			raw, _ := v.(string)
			if raw == "" {
				continue
			}
			d, err := decodeDelivery(target, ids[i], raw)
			if err != nil {
				return n, err
			}
			done := d.DoneAt
			if done.IsZero() {
				done = d.Created
			}
			if d.Status == st && done.Before(before) {
				args = append(args, ids[i], raw)
			}
		}
		if len(args) > 0 {
			gone, err := dropScript.Run(ctx, s.rdb, []string{s.keys.records(target), index}, args...).Int()
			n += gone
			if err != nil {
				return n, err
			}
		}
		if len(members) < pruneChunk {
			return n, nil
		}
		from = "(" + members[len(members)-1]
	}
}

// pruneItems forgets the targets not seen since before (heldBack) and
// deletes the outbox items from the oldest on while they were queued
// before before and every cursor left has passed them.
func (s *Store) pruneItems(ctx context.Context, targets []string, before time.Time) (int, error) {
	held, err := s.heldBack(ctx, targets, before)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		msgs, err := s.rdb.XRangeN(ctx, s.keys.outbox(), "-", held, pruneChunk).Result()
		if err != nil || len(msgs) == 0 {
			return n, err
		}
		var gone []string
		stop := false
		for _, m := range msgs {
			_, queued, _, err := decodeOutboxEntry(m)
			if err != nil {
				return n, err
			}
			if !queued.Before(before) {
				stop = true
				break
			}
			gone = append(gone, m.ID)
		}
		if len(gone) > 0 {
			if err := s.rdb.XDel(ctx, s.keys.outbox(), gone...).Err(); err != nil {
				return n, err
			}
			n += len(gone)
		}
		if stop || len(msgs) < pruneChunk {
			return n, nil
		}
	}
}
