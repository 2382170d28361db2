package optin

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Keys holds the keyring a store uses and can read its source again: a
// store that meets a generation its keyring lacks (rotate-key ran with the
// key file) refreshes before it gives up. Safe for concurrent use.
type Keys struct {
	cur  atomic.Pointer[Keyring]
	load func() (*Keyring, error)

	mu   sync.Mutex
	last time.Time
}

// refreshEvery bounds how often Refresh reads the source.
const refreshEvery = time.Second

// NewKeys holds k; load, when not nil, reads the source again (the key
// file).
func NewKeys(k *Keyring, load func() (*Keyring, error)) *Keys {
	ks := &Keys{load: load}
	ks.cur.Store(k)
	return ks
}

// StaticKeys holds k and never refreshes (tests, tools).
func StaticKeys(k *Keyring) *Keys { return NewKeys(k, nil) }

// Get returns the keyring in use.
func (ks *Keys) Get() *Keyring { return ks.cur.Load() }

// Refresh reads the source again, at most once a second, and uses what
// it read when it has the same identity secret. It returns the keyring
// in use afterwards; an error when the source cannot be read or holds
// another identity (the keyring in use stays).
func (ks *Keys) Refresh() (*Keyring, error) {
	if ks.load == nil {
		return ks.Get(), nil
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if time.Since(ks.last) < refreshEvery {
		return ks.Get(), nil
	}
	ks.last = time.Now()
	k, err := ks.load()
	if err != nil {
		return ks.Get(), err
	}
	if !k.SameIdentity(ks.Get()) {
		return ks.Get(), fmt.Errorf("%w: the key file now holds another identity; keeping the one this instance started with", ErrBadKey)
	}
	ks.cur.Store(k)
	return k, nil
}

// Set uses k from now on (rotate-key, with the key file it wrote). It
// must have the identity secret of the keyring in use.
func (ks *Keys) Set(k *Keyring) error {
	if !k.SameIdentity(ks.Get()) {
		return fmt.Errorf("%w: another identity than the keyring in use", ErrBadKey)
	}
	ks.cur.Store(k)
	return nil
}

// Unwrap opens a wrapped subject key, refreshing the keyring once when
// the wrap's generation is missing.
func (ks *Keys) Unwrap(sid string, wrapped []byte) ([]byte, error) {
	key, err := ks.Get().Unwrap(sid, wrapped)
	if !errors.Is(err, ErrKeyGeneration) || ks.load == nil {
		return key, err
	}
	k, rerr := ks.Refresh()
	if rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	return k.Unwrap(sid, wrapped)
}
