package dkim

import "errors"

var (
	// ErrKey is wrapped by the errors of a key that cannot sign: a file
	// that holds no private key, a kind of key DKIM has no algorithm for,
	// or an RSA key too short to be trusted.
	ErrKey = errors.New("dkim: unusable key")
	// ErrConfig is wrapped by New's errors about its keys and options.
	ErrConfig = errors.New("dkim: bad signer configuration")
)
