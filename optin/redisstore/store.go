package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// Keys is the ledger key. Required: nothing personal in
	// the store can be read or written without it.
	Keys *optin.Keys
	// Prefix starts every key; default "optin:". It must not hold braces
	// (they would become the Cluster hash tag).
	Prefix string
	// Now is the clock for suppression times and events without a time;
	// default time.Now.
	Now func() time.Time
	// Progress, when not nil, hears how a migration of schema version 1
	// goes (Open migrates before it returns).
	Progress func(done int)
	// Copying opens a store that is the target of an unfinished copy
	// (optin.Copy), which Open otherwise refuses with an error wrapping
	// optin.ErrCopying: only the copy itself sets it.
	Copying bool
}

// Store is the Redis store. Safe for concurrent use, also by several
// processes sharing one Redis: they hold the same ledger key (its file),
// so they compute the same subject ids, and see each other's writes at
// once (nothing is cached but what a lookup saw for the write that
// follows it, which the write checks).
type Store struct {
	rdb  redis.UniversalClient
	keys keys
	ring *optin.Keys
	now  func() time.Time
	// cluster is true on Redis Cluster, where a script holds one slot.
	cluster bool
	trips   *tripCounter
	// batchAttempts is batchAttempts; tests lower it.
	batchAttempts int
	// stripes serialize this process's writes to one subject, so its
	// own writers do not spend their retries on each other; the scripts'
	// checks still guard against other processes.
	stripes [64]sync.Mutex
	// seen is what lookups saw of receipt chains, for the writes after.
	seen *seenCache
	// applyKeys are applyScript's keys after the subjects' on one node.
	applyKeys []string
	// names are the codes of purposes and actors in receipts.
	names *names
	// epoch is the marker this instance found (or made) at Open; lost
	// is set once it vanished or changed.
	epoch string
	lost  atomic.Pointer[string]
	// epochOwn names this instance in leases.
	epochOwn string
	// gen is the store's key generation (meta g): new subject keys are
	// wrapped under it, so that every instance can read them even when
	// this one's key file has a newer generation prepared.
	gen atomic.Uint32

	closeOnce sync.Once
	closeErr  error
}

var _ optin.Store = (*Store)(nil)

// Open checks the options and the store's key check, creates the meta
// hash on first use, and migrates a store of schema version 1 (see
// migrate.go). An unreachable Redis is an error wrapping
// optin.ErrUnavailable; a store made with another ledger key one wrapping
// optin.ErrBadKey. On any error the caller still owns the client.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("redisstore: no client")
	}
	if opts.Keys == nil {
		return nil, errors.New("redisstore: no ledger key")
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
	s := &Store{rdb: opts.Client, keys: keys{opts.Prefix}, ring: opts.Keys, now: opts.Now, cluster: cluster,
		trips: &tripCounter{}, batchAttempts: batchAttempts, seen: newSeenCache(1<<16, time.Minute), epochOwn: newEpoch(), names: newNames()}
	s.applyKeys = []string{s.keys.feed(), s.keys.supp(), s.keys.names(), s.keys.outbox(), s.keys.erasures()}
	s.rdb.AddHook(s.trips)

	meta, err := s.rdb.HGetAll(ctx, s.keys.meta()).Result()
	if err != nil {
		return nil, wrap("open", err)
	}
	if meta[metaVersion] == schemaV1 {
		if err := s.migrate(ctx, meta, opts.Progress); err != nil {
			return nil, err
		}
		if meta, err = s.rdb.HGetAll(ctx, s.keys.meta()).Result(); err != nil {
			return nil, wrap("open", err)
		}
	}
	if len(meta) == 0 {
		if meta, err = s.makeMeta(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.checkMeta(meta); err != nil {
		return nil, err
	}
	if from := meta[metaRestoring]; from != "" && !opts.Copying {
		return nil, fmt.Errorf("redisstore: %w (from %s): run optinproxy migrate again to finish it", optin.ErrCopying, from)
	}
	if !cluster {
		// Loaded now, so that the first write is one round trip (EVALSHA);
		// after a restart of Redis it costs one more (EVAL).
		if err := applyScript.Load(ctx, s.rdb).Err(); err != nil {
			return nil, wrap("open", err)
		}
	}
	s.epoch = meta[metaEpoch]
	if err := s.noteGeneration(ctx, meta); err != nil {
		return nil, err
	}
	return s, nil
}

// makeMeta creates the meta hash of a new store: the schema version, the
// key check and a new epoch, each only when no other instance set it
// first; and reads back what is there.
func (s *Store) makeMeta(ctx context.Context) (map[string]string, error) {
	var got *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, s.keys.meta(), metaVersion, schemaVersion)
		p.HSetNX(ctx, s.keys.meta(), metaKeyCheck, s.ring.Get().Check())
		p.HSetNX(ctx, s.keys.meta(), metaEpoch, newEpoch())
		p.HSetNX(ctx, s.keys.meta(), metaGeneration, s.ring.Get().Newest())
		got = p.HGetAll(ctx, s.keys.meta())
		return nil
	})
	if err != nil {
		return nil, wrap("open", err)
	}
	return got.Val(), nil
}

// checkMeta refuses a store of another schema or another ledger key.
func (s *Store) checkMeta(meta map[string]string) error {
	if v := meta[metaVersion]; v != schemaVersion {
		return fmt.Errorf("redisstore: %s holds schema version %q, this program knows %q (and migrates %q)", s.keys.meta(), v, schemaVersion, schemaV1)
	}
	if kc := meta[metaKeyCheck]; kc != s.ring.Get().Check() {
		return fmt.Errorf("redisstore: %w: this store was made with another ledger key (its key check is %.8s…, the key file's %.8s…): use the key file made with this store, or point store.redis at the store this key file belongs to",
			optin.ErrBadKey, kc, s.ring.Get().Check())
	}
	return nil
}

// noteGeneration takes the store's key generation (meta g, which Rotate
// raises): a ledger key that lacks it is read again, then refused.
func (s *Store) noteGeneration(ctx context.Context, meta map[string]string) error {
	g, _ := strconv.ParseUint(meta[metaGeneration], 10, 32)
	if g == 0 {
		g = uint64(s.ring.Get().Newest())
		if err := s.rdb.HSetNX(ctx, s.keys.meta(), metaGeneration, g).Err(); err != nil {
			return wrap("open", err)
		}
	}
	if ring := s.ring.Get(); uint32(g) > ring.Newest() {
		if ring, _ = s.ring.Refresh(); uint32(g) > ring.Newest() {
			return fmt.Errorf("redisstore: %w: the store uses key generation %d, the key file has up to %d: copy the key file from where rotate-key ran",
				optin.ErrBadKey, g, ring.Newest())
		}
	}
	s.gen.Store(uint32(g))
	return nil
}

func newEpoch() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Ping sends one HMGET of the meta hash: Redis answers, and the marker
// this instance found at Open is still there. When it vanished (Redis
// lost its data) or changed (another instance found it gone and made a
// new one), Ping returns an error wrapping optin.ErrDataLost from then
// on, and makes a new marker when there is none, so that the other
// instances notice too. A newer key generation in the store makes the
// ledger key be read again.
func (s *Store) Ping(ctx context.Context) error {
	vals, err := s.rdb.HMGet(ctx, s.keys.meta(), metaEpoch, metaGeneration).Result()
	if err != nil {
		return wrap("ping", err)
	}
	epoch, _ := vals[0].(string)
	switch {
	case epoch == "":
		s.markLost("the store's marker vanished")
		if _, err := s.makeMeta(ctx); err != nil {
			return err
		}
	case epoch != s.epoch:
		s.markLost("the store's marker was made again by another instance")
	}
	if lost := s.lost.Load(); lost != nil {
		return fmt.Errorf("redisstore: %w: %s", optin.ErrDataLost, *lost)
	}
	if g, _ := vals[1].(string); g != "" {
		n, err := strconv.ParseUint(g, 10, 32)
		if err == nil && uint32(n) > s.ring.Get().Newest() {
			if ring, err := s.ring.Refresh(); err != nil || uint32(n) > ring.Newest() {
				return fmt.Errorf("redisstore: %w: the store uses key generation %d, the key file has up to %d: copy the key file from where rotate-key ran",
					optin.ErrBadKey, n, ring.Newest())
			}
		}
		if err == nil {
			s.gen.Store(uint32(n))
		}
	}
	return nil
}

// markLost records, once, when and how the data was lost, and forgets
// what this instance knew was stored (the codes of names).
func (s *Store) markLost(how string) {
	s.names.forget()
	msg := fmt.Sprintf("%s (noticed %s): consents and receipts written before are gone unless a backup is restored; decisions fail closed",
		how, s.now().UTC().Format(time.RFC3339))
	s.lost.CompareAndSwap(nil, &msg)
}

// Close closes the client. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.rdb.Close() })
	return s.closeErr
}

// RoundTrips counts the client's round trips since Open: one per command
// sent alone, one per pipeline or script, not counting the commands that
// set up a new connection. It counts whatever uses the client. For tests
// and benchmarks.
func (s *Store) RoundTrips() int64 { return s.trips.n.Load() }

func (s *Store) sid(a optin.Address) string { return s.ring.Get().SubjectID(a) }

// stripe is the lock for one subject id.
func (s *Store) stripe(sid string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(sid))
	return &s.stripes[h.Sum32()%uint32(len(s.stripes))]
}
