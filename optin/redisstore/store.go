package redisstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// Options configure Open.
type Options struct {
	// Client reaches Redis: one node, Sentinel or Cluster (see NewClient).
	// Required. The Store owns it from a successful Open on: Close closes
	// it.
	Client redis.UniversalClient
	// Prefix starts every key; default "optin:". It must not hold braces
	// (they would become the Cluster hash tag).
	Prefix string
	// Now is the clock for suppression times and events without a time;
	// default time.Now.
	Now func() time.Time
}

// Store is the Redis store. Safe for concurrent use, also by several
// processes sharing one Redis: they agree on the ledger key through the
// meta hash and see each other's writes at once (nothing is cached).
type Store struct {
	rdb       redis.UniversalClient
	keys      keys
	now       func() time.Time
	ledgerKey []byte
	// cluster is true on Redis Cluster, where a MULTI holds one slot.
	cluster bool
	trips   *tripCounter
	// batchAttempts is batchAttempts; tests lower it.
	batchAttempts int
	// stripes serialize this process's transactions on one subject, so
	// its own writers do not spend their optimistic retries on each
	// other; WATCH still guards against other processes.
	stripes [64]sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

var _ optin.Store = (*Store)(nil)

// Open checks the options, creates the ledger key on first use (HSETNX,
// so concurrent first starts agree) and reads it back, in one round trip.
// An unreachable Redis is an error wrapping optin.ErrUnavailable; on any
// error the caller still owns the client.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("redisstore: no client")
	}
	if _, ok := opts.Client.(*redis.Ring); ok {
		return nil, errors.New("redisstore: a Ring client is not supported; use one node, Sentinel or Cluster")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: prefix %q holds a brace", opts.Prefix)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	_, cluster := opts.Client.(*redis.ClusterClient)
	s := &Store{rdb: opts.Client, keys: keys{opts.Prefix}, now: opts.Now, cluster: cluster, trips: &tripCounter{}, batchAttempts: batchAttempts}
	s.rdb.AddHook(s.trips)

	var got *redis.SliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, s.keys.meta(), metaLedgerKey, optin.NewKey())
		p.HSetNX(ctx, s.keys.meta(), metaVersion, schemaVersion)
		got = p.HMGet(ctx, s.keys.meta(), metaLedgerKey, metaVersion)
		return nil
	})
	if err != nil {
		return nil, wrap("open", err)
	}
	vals := got.Val()
	lk, _ := vals[0].(string)
	if v, _ := vals[1].(string); v != schemaVersion {
		return nil, fmt.Errorf("redisstore: %s holds schema version %q, this program knows %q", s.keys.meta(), v, schemaVersion)
	}
	if len(lk) != optin.KeySize {
		return nil, fmt.Errorf("redisstore: %w: ledger key of %d bytes in %s", optin.ErrCorrupt, len(lk), s.keys.meta())
	}
	s.ledgerKey = []byte(lk)
	return s, nil
}

// Ping sends PING.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.rdb.Ping(ctx).Err())
}

// Close closes the client. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.rdb.Close() })
	return s.closeErr
}

// RoundTrips counts the client's round trips since Open: one per command
// sent alone, one per pipeline or transaction, not counting the commands
// that set up a new connection. It counts whatever uses the client, and
// on Cluster a transaction's round trips are not counted (they run on the
// node's own client). For tests and benchmarks.
func (s *Store) RoundTrips() int64 { return s.trips.n.Load() }

func (s *Store) sid(a optin.Address) string { return optin.SubjectID(s.ledgerKey, a) }

// stripe is the lock for one subject id.
func (s *Store) stripe(sid string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(sid))
	return &s.stripes[h.Sum32()%uint32(len(s.stripes))]
}
