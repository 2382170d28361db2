package redisstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dial attempts of the clients NewClient builds.
const (
	dialAttempts  = 2
	dialRetryWait = 50 * time.Millisecond
)

// NewClient builds the client the configuration names: one node
// by url (redis://host:port/db, rediss:// for TLS, with user, password
// and go-redis's query options such as dial_timeout), a Sentinel-managed
// master by sentinelMaster and sentinelAddrs, or a Cluster by
// clusterAddrs. With Sentinel or Cluster, a url, when given as well,
// supplies the user, password, TLS and timeouts (and, with Sentinel, the
// database); its host is not used. No Redis, or both Sentinel and
// Cluster, is an error. Nothing is dialled until the first command.
//
// A failed dial is retried once after 50ms (go-redis tries five times,
// 100ms apart), so that an unreachable Redis shows as
// optin.ErrUnavailable within a second and the relay answers 451 rather
// than keeping its client waiting.
func NewClient(url string, sentinelMaster string, sentinelAddrs, clusterAddrs []string) (redis.UniversalClient, error) {
	var base *redis.Options
	if url != "" {
		var err error
		if base, err = redis.ParseURL(url); err != nil {
			return nil, fmt.Errorf("redisstore: redis url: %w", err)
		}
	}
	switch {
	case (sentinelMaster != "" || len(sentinelAddrs) > 0) && len(clusterAddrs) > 0:
		return nil, errors.New("redisstore: both Sentinel and Cluster addresses are set")
	case sentinelMaster != "" && len(sentinelAddrs) == 0:
		return nil, errors.New("redisstore: a Sentinel master without Sentinel addresses")
	case sentinelMaster == "" && len(sentinelAddrs) > 0:
		return nil, errors.New("redisstore: Sentinel addresses without a master name")
	case sentinelMaster != "":
		o := &redis.FailoverOptions{MasterName: sentinelMaster, SentinelAddrs: sentinelAddrs}
		if base != nil {
			o.Username, o.Password, o.DB, o.TLSConfig = base.Username, base.Password, base.DB, base.TLSConfig
			o.DialTimeout, o.ReadTimeout, o.WriteTimeout = base.DialTimeout, base.ReadTimeout, base.WriteTimeout
			o.PoolSize, o.MaxRetries = base.PoolSize, base.MaxRetries
		}
		o.DialerRetries, o.DialerRetryTimeout = dialAttempts, dialRetryWait
		return redis.NewFailoverClient(o), nil
	case len(clusterAddrs) > 0:
		if base != nil && base.DB != 0 {
			return nil, fmt.Errorf("redisstore: a Redis Cluster has only database 0, not %d", base.DB)
		}
		o := &redis.ClusterOptions{Addrs: clusterAddrs}
		if base != nil {
			o.Username, o.Password, o.TLSConfig = base.Username, base.Password, base.TLSConfig
			o.DialTimeout, o.ReadTimeout, o.WriteTimeout = base.DialTimeout, base.ReadTimeout, base.WriteTimeout
			o.PoolSize, o.MaxRetries = base.PoolSize, base.MaxRetries
		}
		o.DialerRetries, o.DialerRetryTimeout = dialAttempts, dialRetryWait
		return redis.NewClusterClient(o), nil
	case base != nil:
		base.DialerRetries, base.DialerRetryTimeout = dialAttempts, dialRetryWait
		return redis.NewClient(base), nil
	}
	return nil, errors.New("redisstore: no Redis configured (url, Sentinel or Cluster)")
}
