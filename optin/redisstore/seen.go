package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// seen is the key of a dedup mark: its value is its until in Unix ms,
// and Redis drops it then (PXAT).
func (k keys) seen(key string) string { return k.prefix + "seen:" + key }

// Seen reports whether key has a mark whose until the store's clock has
// not reached, in one round trip.
func (s *Store) Seen(ctx context.Context, key string) (bool, error) {
	if err := optin.CheckMarkKey(key); err != nil {
		return false, fmt.Errorf("redisstore: %w", err)
	}
	v, err := s.rdb.Get(ctx, s.keys.seen(key)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, wrap("seen", err)
	}
	until, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return false, fmt.Errorf("redisstore: seen: %w: mark %q", optin.ErrCorrupt, v)
	}
	return s.now().UnixMilli() < until, nil
}

// Mark remembers key until until (rounded up to the millisecond),
// replacing an earlier mark of it, in one round trip; a mark already past
// by the store's clock is not written.
func (s *Store) Mark(ctx context.Context, key string, until time.Time) error {
	if err := optin.CheckMarkKey(key); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	if !until.After(s.now()) {
		return nil
	}
	ms := until.Add(time.Millisecond - 1).UnixMilli()
	err := s.rdb.SetArgs(ctx, s.keys.seen(key), ms, redis.SetArgs{ExpireAt: time.UnixMilli(ms)}).Err()
	return wrap("mark", err)
}
