package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// quiet drops go-redis's own log lines (failed dials while a test has
// stopped the server); the tests check the errors the store returns.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quiet{}) }
