package notices

import (
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"
)

// Sentinels of the upstream's answer to a notice, for errors.Is. The
// errors Send* return wrap one of them, and say why in words that hold no
// address: an upstream's reply text often repeats the recipient, so only
// its codes are kept.
var (
	// ErrRefused: the upstream refused the notice for good (5xx), or
	// lacks what it needs (SMTPUTF8 for a non-ASCII address). Sending it
	// again will not help.
	ErrRefused = errors.New("notices: refused by the upstream")
	// ErrDeferred: the upstream could not be reached or answered 4xx;
	// a later attempt may succeed.
	ErrDeferred = errors.New("notices: upstream failed, try again later")
	// ErrMaybeSent: the upstream's reply to the whole message was lost,
	// so it may have been delivered; sending it again may send it twice.
	ErrMaybeSent = errors.New("notices: the upstream's reply was lost, the notice may have been sent")
)

// sendError turns the upstream's error into one of the sentinels.
func sendError(err error) error {
	var se *smtp.SMTPError
	var lacks interface{ Lacks() string }
	var maybe interface{ MaybeDelivered() bool }
	switch {
	case errors.As(err, &se):
		e := se.EnhancedCode
		target := ErrDeferred
		if se.Code >= 500 {
			target = ErrRefused
		}
		return fmt.Errorf("%w: %d %d.%d.%d", target, se.Code, e[0], e[1], e[2])
	case errors.As(err, &lacks):
		return fmt.Errorf("%w: it does not offer %s", ErrRefused, lacks.Lacks())
	case errors.As(err, &maybe) && maybe.MaybeDelivered():
		return ErrMaybeSent
	}
	return fmt.Errorf("%w: %v", ErrDeferred, err)
}

// Retryable reports whether a notice that failed with err may be sent
// again: not when it was refused for good or may have gone out already.
func Retryable(err error) bool {
	return err != nil && !errors.Is(err, ErrRefused) && !errors.Is(err, ErrMaybeSent)
}
