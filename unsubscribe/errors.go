package unsubscribe

import "errors"

// ErrBadToken means a token is not one of ours: malformed, sealed under a
// key this instance does not hold, or changed after it was issued. The
// wrapped message says which; none of them tells a visitor more than
// "bad link".
var ErrBadToken = errors.New("unsubscribe: bad token")
