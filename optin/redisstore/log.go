package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/redis/go-redis/v9"
)

// SetLogger sends go-redis's own log lines (a pool that cannot dial, a
// recovered panic) to log at warn level, so the log stays one JSON line
// per entry instead of gaining go-redis's plain-text lines on standard
// error. go-redis has one logger for the process, so this is global.
func SetLogger(log *slog.Logger) {
	redis.SetLogger(clientLog{log})
}

type clientLog struct{ log *slog.Logger }

func (l clientLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", redactAddresses(fmt.Sprintf(format, v...)))
}

// atSign matches a word holding an @: an email address, or the userinfo
// and host of a redis:// URL with its password.
var atSign = regexp.MustCompile(`[^\s"'<>()\[\],;]*@[^\s"'<>()\[\],;]*`)

// redactAddresses keeps email addresses and URL credentials out of the
// log (logs hold no address and no credential).
func redactAddresses(s string) string {
	return atSign.ReplaceAllString(s, "[redacted]")
}
