package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// leaseScript takes a job's lease when nobody holds it, or renews it for
// its holder: KEYS[1] the lease, ARGV[1] the instance, ARGV[2] the ttl
// in ms. It answers 1 when the instance holds the lease.
var leaseScript = redis.NewScript(`
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// Lease takes or renews the lease of a job for ttl in one round trip;
// false while another instance holds it. Redis expires it by itself, so
// an instance that dies lets another take over after ttl.
func (s *Store) Lease(ctx context.Context, job string, ttl time.Duration) (bool, error) {
	n, err := leaseScript.Run(ctx, s.rdb, []string{s.keys.lease(job)}, s.epochOwn, ttl.Milliseconds()).Int()
	if err != nil {
		return false, wrap("lease", err)
	}
	return n == 1, nil
}
