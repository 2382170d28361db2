package optin

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
)

// b32 is base32 (RFC 4648) in lower case, without padding: the form of
// subject and event ids.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// KeySize is the size of the ledger key and of every subject key.
const KeySize = 32

// NewKey returns a random key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}

// SubjectID is Keyring.SubjectID for an identity secret.
func SubjectID(ledgerKey []byte, a Address) string {
	m := hmac.New(sha256.New, ledgerKey)
	m.Write([]byte(a.String()))
	return (b32.EncodeToString(m.Sum(nil)[:16]))
}

// personal is what an event seals.
type personal struct {
	Subject string          `json:"s"`
	Details json.RawMessage `json:"d,omitempty"`
}

// Seal turns an event into its stored form under the subject's key. The
// id and subject id are bound as associated data, so a sealed blob cannot
// be moved to another event. Prev and Hash are left for the store to set
// in the transaction that appends it (Chain).
func Seal(key []byte, subjectID string, e Event) (SealedEvent, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return SealedEvent{}, err
	}
	plain, err := json.Marshal(personal{Subject: e.Subject.String(), Details: e.Details})
	if err != nil {
		return SealedEvent{}, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return SealedEvent{}, err
	}
	return SealedEvent{
		ID: e.ID, Time: e.Time.UTC(), Type: e.Type, SubjectID: subjectID, Purpose: e.Purpose, Actor: e.Actor,
		Sealed: aead.Seal(nonce, nonce, plain, []byte(e.ID+"\x00"+subjectID)),
	}, nil
}

// Chain links s after the event whose hash is prev and sets its hash.
func (e *SealedEvent) Chain(prev string) {
	e.Prev = prev
	e.Hash = e.ComputeHash()
}

// Open reads a stored event back. With a nil key (the subject was erased)
// the event comes back with Erased set and no personal fields. A receipt
// does not hold the address: the caller sets Subject.
func Open(key []byte, s SealedEvent) (Event, error) {
	e := Event{ID: s.ID, Time: s.Time, Type: s.Type, Purpose: s.Purpose, Actor: s.Actor, Prev: s.Prev, Hash: s.Hash}
	if key == nil {
		e.Erased = true
		return e, nil
	}
	if s.Receipt {
		return openReceipt(key, s, e)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return e, err
	}
	ns := aead.NonceSize()
	if len(s.Sealed) < ns {
		return e, fmt.Errorf("%w: event %s: sealed data too short", ErrCorrupt, s.ID)
	}
	plain, err := aead.Open(nil, s.Sealed[:ns], s.Sealed[ns:], []byte(s.ID+"\x00"+s.SubjectID))
	if err != nil {
		return e, fmt.Errorf("%w: event %s: %v", ErrCorrupt, s.ID, err)
	}
	var p personal
	if err := json.Unmarshal(plain, &p); err != nil {
		return e, fmt.Errorf("%w: event %s: %v", ErrCorrupt, s.ID, err)
	}
	if p.Subject != "" {
		if e.Subject, err = ParseAddress(p.Subject); err != nil {
			return e, fmt.Errorf("%w: event %s: %v", ErrCorrupt, s.ID, err)
		}
	}
	e.Details = p.Details
	return e, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: subject key of %d bytes", ErrCorrupt, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// SealAddress seals a subject's address under a key derived from its
// subject key, with the subject id bound as associated data. The nonce is
// fixed: the derived key seals nothing else, and a subject id has one
// address. 12 bytes longer than the address.
func SealAddress(key []byte, sid string, a Address) []byte {
	var nonce [12]byte
	return addressKey(key).Seal(nil, nonce[:], []byte(a.String()), []byte(sid))
}

// OpenAddress reads SealAddress's form back.
func OpenAddress(key []byte, sid string, sealed []byte) (Address, error) {
	var nonce [12]byte
	plain, err := addressKey(key).Open(nil, nonce[:], sealed, []byte(sid))
	if err != nil {
		return Address{}, fmt.Errorf("%w: subject %s: its address does not open", ErrCorrupt, sid)
	}
	a, err := ParseAddress(string(plain))
	if err != nil {
		return Address{}, fmt.Errorf("%w: subject %s: %v", ErrCorrupt, sid, err)
	}
	return a, nil
}

// addressKey seals the address with a 12-byte tag: with the subject key
// wrapped, it keeps a subject's state within Redis's 160-byte allocation.
func addressKey(subjectKey []byte) cipher.AEAD {
	return shortGCM(derive(subjectKey, "optinproxy address"))
}

// shortGCM is AES-GCM with a 12-byte tag, the shortest SP 800-38D allows
// for general use, for the short values a store keeps many of.
func shortGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // KeySize keys only
	}
	aead, err := cipher.NewGCMWithTagSize(block, 12)
	if err != nil {
		panic(err)
	}
	return aead
}
