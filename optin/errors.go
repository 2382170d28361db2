// Package optin is optinproxy's domain: addresses, purposes, consent
// records, events, decisions and the store contract. It imports nothing of
// the project, so every other package can depend on it.
package optin

import (
	"errors"
	"fmt"
)

// Sentinel errors of package optin. Functions wrap them with %w and a
// detail; callers compare with errors.Is.
var (
	// ErrBadAddress means a string is not an email address optinproxy
	// accepts; the wrapped message says what is wrong with it
	// without repeating the address.
	ErrBadAddress = errors.New("optin: bad address")

	// ErrNotFound means nothing is stored under the key asked for.
	ErrNotFound = errors.New("optin: not found")

	// ErrUnknownPurpose means a purpose name is not configured.
	ErrUnknownPurpose = errors.New("optin: unknown purpose")

	// ErrBadPurpose means a purpose's configuration is not valid.
	ErrBadPurpose = errors.New("optin: bad purpose")

	// ErrBadInput means a request's data is not valid (a bad status, a
	// bad time, evidence that is not text); the message says which.
	ErrBadInput = errors.New("optin: bad input")

	// ErrUnavailable means the store cannot be reached now; the caller
	// may retry. Decisions fail closed on it.
	ErrUnavailable = errors.New("optin: store unavailable")

	// ErrCorrupt means stored data does not decode or decrypt.
	ErrCorrupt = errors.New("optin: corrupt data")

	// ErrConflict means a concurrent writer changed the same subject;
	// stores retry internally and return it only when retries run out.
	ErrConflict = errors.New("optin: conflict")
)

// Sentinel errors of the ledger key.
var (
	// ErrBadKey means a ledger key (store.key_file) cannot be read or
	// does not fit the store; the message says which and what to do.
	ErrBadKey = errors.New("optin: bad ledger key")

	// ErrKeyGeneration means a subject key is wrapped under a generation
	// the ledger key lacks: rotate-key ran with another copy of the key
	// file, or the generation was retired.
	ErrKeyGeneration = errors.New("optin: the ledger key lacks generation")

	// ErrDataLost means the store lost its data while this instance used
	// it (its marker vanished or changed): consents recorded before are
	// gone unless a backup is restored. Decisions stay fail-closed.
	ErrDataLost = errors.New("optin: store data lost")
)

// Sentinel errors of erasure.
var (
	// ErrErased means the address was erased: it holds the erased
	// suppression, and a grant or a pending record for it is refused
	// until that suppression is removed (the person asked to come back).
	ErrErased = errors.New("optin: the address was erased")

	// ErrNoErasure means no erasure is scheduled for the address (a
	// cancellation of none). It wraps ErrNotFound.
	ErrNoErasure = fmt.Errorf("%w: no erasure is scheduled", ErrNotFound)
)
