package redisstore

import (
	"encoding/hex"
	"strconv"
	"time"

	"optinproxy/optin"
)

// markOf is what a mark's key keeps of a message key: its
// optin.MessageHash in hex.
func markOf(message string) string { return hex.EncodeToString(optin.MessageHash(message)) }

// expireAt is when Redis drops a mark: its until rounded up to the
// millisecond (PXAT's unit), so that Redis never forgets it before Lookup
// would.
func expireAt(until time.Time) time.Time {
	return until.Add(time.Millisecond - 1).Truncate(time.Millisecond)
}

// markValue is a mark's value: its until in Unix nanoseconds.
func markValue(until time.Time) string { return strconv.FormatInt(until.UnixNano(), 10) }

// deliveredBy reads a mark's value (a GET, "" when none) and tells
// whether it holds at now.
func deliveredBy(v string, now time.Time) bool {
	if v == "" {
		return false
	}
	until, err := strconv.ParseInt(v, 10, 64)
	return err == nil && now.UnixNano() < until
}
