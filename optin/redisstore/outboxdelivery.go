package redisstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// saveScript writes a target's records, moves its cursor and notes when
// it saved, all in its slot: KEYS[1] the records hash, KEYS[2..4] the
// pending, dead and retired indexes, KEYS[5] the cursor, KEYS[6] the
// time of the last save; ARGV[1] the cursor ("" to leave it), ARGV[2]
// the time, then per record its event id and encodeDelivery form. A
// record replaced leaves the index of its old status (its first byte)
// for the one of its new.
var saveScript = redis.NewScript(`
redis.call('SET', KEYS[6], ARGV[2])
local idx = {p = KEYS[2], x = KEYS[3], r = KEYS[4]}
for i = 3, #ARGV, 2 do
  local id, v = ARGV[i], ARGV[i+1]
  local old = redis.call('HGET', KEYS[1], id)
  if old and idx[string.sub(old, 1, 1)] then
    redis.call('ZREM', idx[string.sub(old, 1, 1)], string.sub(old, 2, 9) .. id)
  end
  redis.call('ZADD', idx[string.sub(v, 1, 1)], 0, string.sub(v, 2, 9) .. id)
  redis.call('HSET', KEYS[1], id, v)
end
if ARGV[1] ~= '' then redis.call('SET', KEYS[5], ARGV[1]) end
return 1
`)

// targetKeys are saveScript's keys for target.
func (s *Store) targetKeys(target string) []string {
	return []string{s.keys.records(target), s.keys.statusIndex(target, optin.DeliveryPending),
		s.keys.statusIndex(target, optin.DeliveryDead), s.keys.statusIndex(target, optin.DeliveryRetired), s.keys.cursor(target),
		s.keys.saved(target)}
}

// OutboxCursor is where target took its last item; ErrNotFound when it
// never saved one.
func (s *Store) OutboxCursor(ctx context.Context, target string) (string, error) {
	if err := optin.CheckTarget(target); err != nil {
		return "", fmt.Errorf("redisstore: %w", err)
	}
	c, err := s.rdb.Get(ctx, s.keys.cursor(target)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("redisstore: outbox cursor of %s: %w", target, optin.ErrNotFound)
	}
	return c, wrap("outbox cursor", err)
}

// SaveDeliveries stores ds, each replacing the record with its event id
// (and moving it between the status indexes), moves target's cursor to
// cursor unless it is "", and notes when target saved (its sign of life
// for PruneOutbox), in one script in the target's slot, in one round
// trip.
func (s *Store) SaveDeliveries(ctx context.Context, target string, ds []optin.OutboxDelivery, cursor string) error {
	if err := optin.CheckDeliveries(target, ds); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	if cursor != "" {
		if err := checkPos(cursor); err != nil {
			return err
		}
	}
	if len(ds) == 0 && cursor == "" {
		return nil
	}
	args := make([]any, 2, 2+2*len(ds))
	args[0], args[1] = cursor, strconv.FormatInt(s.now().UnixMilli(), 10)
	for i := range ds {
		args = append(args, ds[i].EventID, encodeDelivery(&ds[i]))
	}
	// The targets set is in another slot: added beside the script, in its
	// pipeline (adding again changes nothing).
	run := func() error {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.SAdd(ctx, s.keys.targets(), target)
			saveScript.EvalSha(ctx, p, s.targetKeys(target), args...)
			return nil
		})
		return err
	}
	err := run()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = saveScript.Load(ctx, s.rdb).Err(); err == nil {
			err = run()
		}
	}
	return wrap("save deliveries", err)
}

// Delivery reads target's record of eventID; ErrNotFound when there is
// none.
func (s *Store) Delivery(ctx context.Context, target, eventID string) (optin.OutboxDelivery, error) {
	if err := optin.CheckTarget(target); err != nil {
		return optin.OutboxDelivery{}, fmt.Errorf("redisstore: %w", err)
	}
	v, err := s.rdb.HGet(ctx, s.keys.records(target), eventID).Result()
	if errors.Is(err, redis.Nil) {
		return optin.OutboxDelivery{}, fmt.Errorf("redisstore: delivery %s of %s: %w", eventID, target, optin.ErrNotFound)
	}
	if err != nil {
		return optin.OutboxDelivery{}, wrap("delivery", err)
	}
	return decodeDelivery(target, eventID, v)
}

// listed is one record of a Deliveries page: where it sorts.
type listed struct {
	created, target, eventID string
}

func (l listed) compare(o listed) int {
	return cmp.Or(cmp.Compare(l.created, o.created), cmp.Compare(l.target, o.target), cmp.Compare(l.eventID, o.eventID))
}

// Deliveries pages through the records of q.Status, oldest Created first
// (then by target and event id), of q.Target or of all targets, in two
// round trips (three for all targets): each target's index from the
// cursor on, then the records. A record that changed status between the
// two is left out. A cursor that does not decode is an error wrapping
// optin.ErrBadInput.
func (s *Store) Deliveries(ctx context.Context, q optin.DeliveryQuery) (optin.DeliveryPage, error) {
	if !q.Status.Valid() {
		return optin.DeliveryPage{}, fmt.Errorf("redisstore: %w: delivery status %q", optin.ErrBadInput, q.Status)
	}
	targets := []string{q.Target}
	if q.Target != "" {
		if err := optin.CheckTarget(q.Target); err != nil {
			return optin.DeliveryPage{}, fmt.Errorf("redisstore: %w", err)
		}
	} else {
		var err error
		if targets, err = s.rdb.SMembers(ctx, s.keys.targets()).Result(); err != nil {
			return optin.DeliveryPage{}, wrap("deliveries", err)
		}
		sort.Strings(targets)
	}
	var from *listed
	if q.Cursor != "" {
		created, target, eventID, err := decodeDeliveryCursor(q.Cursor)
		if err != nil {
			return optin.DeliveryPage{}, err
		}
		from = &listed{created, target, eventID}
	}
	limit := optin.PageSize(q.Limit)
	cmds := make([]*redis.StringSliceCmd, len(targets))
	piped, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, t := range targets {
			if lo, ok := lowerBound(from, t); ok {
				cmds[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.keys.statusIndex(t, q.Status), Start: lo, Stop: "+", ByLex: true, Count: int64(limit + 1)})
			}
		}
		return nil
	})
	if err := pipeErr(piped, err); err != nil {
		return optin.DeliveryPage{}, wrap("deliveries", err)
	}
	var found []listed
	for i, t := range targets {
		if cmds[i] == nil {
			continue
		}
		for _, m := range cmds[i].Val() {
			if len(m) < 8 {
				return optin.DeliveryPage{}, fmt.Errorf("redisstore: deliveries: %w: index member of %d bytes", optin.ErrCorrupt, len(m))
			}
			found = append(found, listed{m[:8], t, m[8:]})
		}
	}
	slices.SortFunc(found, listed.compare)
	var page optin.DeliveryPage
	more := len(found) > limit
	found = found[:min(len(found), limit)]
	recs, err := s.readRecords(ctx, found)
	if err != nil {
		return optin.DeliveryPage{}, err
	}
	for i, l := range found {
		if recs[i] == "" {
			continue // deleted since
		}
		d, err := decodeDelivery(l.target, l.eventID, recs[i])
		if err != nil {
			return optin.DeliveryPage{}, err
		}
		if d.Status == q.Status {
			page.Deliveries = append(page.Deliveries, d)
		}
	}
	if more {
		last := found[len(found)-1]
		page.NextCursor = deliveryCursor(&optin.OutboxDelivery{Created: fromUnixNano(int64(binary.BigEndian.Uint64([]byte(last.created)))), Target: last.target, EventID: last.eventID})
	}
	return page, nil
}

// lowerBound is where target's index goes on after the cursor from (nil:
// from the start), as a ZRANGE BYLEX min; false when nothing can follow.
// Records sort by Created, then target, then event id, and an index
// member is Created and event id.
func lowerBound(from *listed, target string) (string, bool) {
	switch {
	case from == nil:
		return "-", true
	case target == from.target:
		return "(" + from.created + from.eventID, true
	case target > from.target:
		return "[" + from.created, true
	}
	next := binary.BigEndian.Uint64([]byte(from.created)) + 1
	if next == 0 {
		return "", false
	}
	return "[" + string(binary.BigEndian.AppendUint64(nil, next)), true
}

// readRecords reads the records of found in one round trip; "" for one
// that is gone.
func (s *Store) readRecords(ctx context.Context, found []listed) ([]string, error) {
	if len(found) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(found))
	piped, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, l := range found {
			cmds[i] = p.HGet(ctx, s.keys.records(l.target), l.eventID)
		}
		return nil
	})
	if err := pipeErr(piped, err); err != nil {
		return nil, wrap("deliveries", err)
	}
	out := make([]string, len(found))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}
