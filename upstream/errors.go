package upstream

import (
	"errors"
	"fmt"
)

// ErrReplyLost means the connection broke after the whole message and
// its final dot were sent, before the upstream's reply came: the copy may
// have been delivered. Send does not try it again. Errors wrapping it
// also have a MaybeDelivered method, for callers that do not import this
// package.
var ErrReplyLost = errors.New("upstream: the reply to the message was lost")

type replyLost struct{ err error }

func (e replyLost) Error() string {
	return "the upstream's reply to the message was lost; the copy may have been delivered: " + e.err.Error()
}
func (e replyLost) Unwrap() []error      { return []error{ErrReplyLost, e.err} }
func (e replyLost) MaybeDelivered() bool { return true }

// The upstream lacks an extension that the message or the configuration
// needs. Each has a Lacks method naming the extension, for callers that
// do not import this package; nothing was sent.
var (
	// ErrNoSMTPUTF8: the message has a non-ASCII address (RFC 6531).
	ErrNoSMTPUTF8 error = &lacking{"SMTPUTF8", "upstream: the upstream does not support SMTPUTF8"}
	// ErrNoStartTLS: starttls is required and the upstream does not offer it.
	ErrNoStartTLS error = &lacking{"STARTTLS", "upstream: STARTTLS required but not offered"}
	// ErrNoRequireTLS: the client asked for REQUIRETLS (RFC 8689).
	ErrNoRequireTLS error = &lacking{"REQUIRETLS", "upstream: the upstream does not offer REQUIRETLS"}
)

type lacking struct{ ext, text string }

func (e *lacking) Error() string { return e.text }
func (e *lacking) Lacks() string { return e.ext }

// ErrProtocol means the upstream broke the protocol: a garbled reply, or
// a reply that does not fit the command (DATA not answered with 354). It
// is never the upstream's verdict on the message; the connection is
// dropped.
var ErrProtocol = errors.New("upstream: protocol error")

// ErrBusy means a Send or Ping found every one of the pool's connections
// busy until its context ended; nothing was sent. The error wraps the
// context's error too, and has a Busy method that reports true, for
// callers that tell it from an upstream that cannot be reached without
// importing this package.
var ErrBusy = errors.New("upstream: no connection free")

type busyError struct {
	size int
	addr string
	ctx  error
}

func (e *busyError) Error() string {
	return fmt.Sprintf("%v: all %d connections to %s stayed busy: %v", ErrBusy, e.size, e.addr, e.ctx)
}

func (e *busyError) Unwrap() []error { return []error{ErrBusy, e.ctx} }

// Busy reports that the upstream was not at fault: the pool was.
func (e *busyError) Busy() bool { return true }
