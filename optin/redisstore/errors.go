package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// wrap names the operation and classifies err: one that means Redis
// cannot be reached now wraps optin.ErrUnavailable (the relay then
// answers 451 and callers retry), WRONGTYPE wraps optin.ErrCorrupt.
// Errors that already wrap an optin sentinel pass with the operation
// named.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case unavailable(err):
		return fmt.Errorf("redisstore: %s: %w: %w", op, optin.ErrUnavailable, err)
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return fmt.Errorf("redisstore: %s: %w: %w", op, optin.ErrCorrupt, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// unavailable reports whether err means Redis cannot serve now.
func unavailable(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, optin.ErrUnavailable):
		return false // already classified
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted),
		errors.As(err, &netErr):
		return true
	case redis.IsLoadingError(err), redis.IsReadOnlyError(err), redis.IsClusterDownError(err),
		redis.IsTryAgainError(err), redis.IsMasterDownError(err), redis.IsMaxClientsError(err),
		redis.IsNoReplicasError(err), redis.IsOOMError(err), redis.HasErrorPrefix(err, "BUSY"):
		return true
	}
	return false
}

// replyLost reports whether err leaves a command's outcome unknown: it
// was sent, or may have been, and no reply came (a read timeout, a
// connection closed or reset). The caller's own deadline is not one: it
// asked to stop.
func replyLost(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return true
	}
	return errors.As(err, &netErr) && netErr.Timeout()
}

// pipeErr returns the first error of a pipeline's commands other than
// redis.Nil (a missing key or list index, which callers read as empty),
// or err when it is not of a command (a failure before any was sent).
func pipeErr(cmds []redis.Cmder, err error) error {
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && !errors.Is(cerr, redis.Nil) {
			return cerr
		}
	}
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}
