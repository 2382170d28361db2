package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"optinproxy/optin"
)

// markOf is what a mark's key keeps of a message key: the first 16 bytes
// of its SHA-256 in hex. Message keys can be long (a Message-ID), and a
// key of fixed length keeps Redis's memory per mark small.
func markOf(message string) string {
	sum := sha256.Sum256([]byte(message))
	return hex.EncodeToString(sum[:16])
}

// checkDelivered rejects a mark the store could not look up or expire.
func checkDelivered(d *optin.Delivery) error {
	switch {
	case d == nil:
		return nil
	case d.Message == "":
		return fmt.Errorf("%w: delivery without a message", optin.ErrBadInput)
	case d.Until.IsZero():
		return fmt.Errorf("%w: delivery without an until", optin.ErrBadInput)
	}
	return nil
}

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
