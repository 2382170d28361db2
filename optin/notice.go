package optin

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// An erasure notice is the address of an erased subject, kept with the
// outbox item of its subject.erased event so that the processors can be
// told whom to delete (Erasure.Notify) after the subject's key is gone.
// It is sealed under the ledger key's newest generation, never the
// subject key: rotate-key and --retire make a lingering copy unreadable
// as they do the subject keys. It goes when the outbox item is pruned.

// SealNotice seals a under the newest generation, bound to the subject
// id and the event's id: the generation (uvarint), a random 12-byte
// nonce and the AES-GCM sealed address.
func (k *Keyring) SealNotice(sid, eventID string, a Address) []byte {
	aead := noticeCipher(k.gens[k.newest].key, sid, k.newest)
	out := binary.AppendUvarint(nil, uint64(k.newest))
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, []byte(a.String()), []byte(eventID))
}

// OpenNotice reads SealNotice's form back. An error wraps
// ErrKeyGeneration when the generation is retired, ErrCorrupt when the
// notice does not open.
func (k *Keyring) OpenNotice(sid, eventID string, sealed []byte) (Address, error) {
	n, used := binary.Uvarint(sealed)
	if used <= 0 || n == 0 || n > 1<<31 || len(sealed) < used+12+16 {
		return Address{}, fmt.Errorf("%w: the erasure notice of event %s", ErrCorrupt, eventID)
	}
	g, have := k.gens[uint32(n)]
	if !have {
		return Address{}, fmt.Errorf("%w %d (the ledger key has %s): the erasure notice of event %s", ErrKeyGeneration, n, k.generationList(), eventID)
	}
	rest := sealed[used:]
	plain, err := noticeCipher(g.key, sid, uint32(n)).Open(nil, rest[:12], rest[12:], []byte(eventID))
	if err != nil {
		return Address{}, fmt.Errorf("%w: the erasure notice of event %s does not open", ErrCorrupt, eventID)
	}
	a, err := ParseAddress(string(plain))
	if err != nil {
		return Address{}, fmt.Errorf("%w: the erasure notice of event %s: %v", ErrCorrupt, eventID, err)
	}
	return a, nil
}

// OpenNotice is Keyring.OpenNotice, reading the key file again once when
// the notice's generation is missing.
func (ks *Keys) OpenNotice(sid, eventID string, sealed []byte) (Address, error) {
	a, err := ks.Get().OpenNotice(sid, eventID, sealed)
	if !errors.Is(err, ErrKeyGeneration) || ks.load == nil {
		return a, err
	}
	k, rerr := ks.Refresh()
	if rerr != nil {
		return Address{}, errors.Join(err, rerr)
	}
	return k.OpenNotice(sid, eventID, sealed)
}

// noticeCipher is the AEAD of one subject's notices under one
// generation.
func noticeCipher(genKey []byte, sid string, gen uint32) cipher.AEAD {
	block, err := aes.NewCipher(derive(genKey, fmt.Sprintf("optinproxy erasure notice\x00%s\x00%d", sid, gen)))
	if err != nil {
		panic(err) // KeySize keys only
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// FillNotice sets e.Subject from the erasure notice of e's outbox item
// (nil: none). A notice under a retired generation leaves it zero, as
// an item without one has it; one that does not open is an error
// wrapping ErrCorrupt.
func (ks *Keys) FillNotice(e *Event, sid string, notice []byte) error {
	if len(notice) == 0 {
		return nil
	}
	a, err := ks.OpenNotice(sid, e.ID, notice)
	switch {
	case errors.Is(err, ErrKeyGeneration):
		return nil
	case err != nil:
		return err
	}
	e.Subject = a
	return nil
}
