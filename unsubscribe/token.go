package unsubscribe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"optinproxy/optin"
)

// A token is base64url (no padding) of
//
//	kind (1) | key id (1) | nonce (12) | AES-256-GCM(plaintext) with its tag (16)
//
// and the plaintext is
//
//	issued, Unix seconds (4) | message hash (8) | len(purpose) (1) | purpose | address
//
// The nonce is synthetic: the first 12 bytes of an HMAC of the plaintext
// under a key of its own. Equal claims give equal tokens, and no nonce is
// ever reused for two different plaintexts, which random 96-bit nonces
// only make unlikely. The kind and key id are authenticated as
// additional data, so a token of one kind never opens as another: an
// unsubscribe link cannot be turned into a portal link.
const (
	nonceSize  = 12
	tagSize    = 16
	headerSize = 2 + nonceSize
	fixedPlain = 4 + 8 + 1
	// maxTokenChars bounds what Parse decodes: an address is at most a
	// few hundred bytes, so a longer token is not one of ours.
	maxTokenChars = 1024
	// minSecretBytes refuses a secret too short to be one (a typo, an
	// empty variable); the generated ones are 64 hex characters.
	minSecretBytes = 16
)

// Kind says what a token is for. The first byte of every token; the
// unsubscribe links sent before kinds existed are KindUnsubscribe.
type Kind byte

const (
	// KindUnsubscribe is the /u/TOKEN link of a marketing copy.
	KindUnsubscribe Kind = 1
	// KindConfirm is the /confirm/TOKEN link of a double opt-in mail;
	// Claim.Purpose is the purpose to confirm.
	KindConfirm Kind = 2
	// KindPortal is the /p/TOKEN link of the personal portal; the portal
	// decides how long after Claim.Issued it is honoured. Its claim's
	// Purpose is "portal".
	KindPortal Kind = 3
)

// hkdfInfo names what the derived keys are for, so that the same secret
// used elsewhere yields unrelated keys.
const hkdfInfo = "optinproxy unsubscribe token v1"

var tokenEncoding = base64.RawURLEncoding.Strict()

// Tokens issues and parses unsubscribe tokens. It issues under the current
// secret and parses under it and every previous one, so that links in mail
// sent before a rotation keep working. Safe for concurrent use.
type Tokens struct {
	keys []tokenKey // keys[0] is the current one
}

// tokenKey is what one secret derives.
type tokenKey struct {
	id    byte
	aead  cipher.AEAD
	nonce []byte // the HMAC key of the synthetic nonce
}

// NewTokens derives the keys of the current secret and the previous ones.
// Secrets are the raw contents of the secret files (surrounding
// whitespace is the caller's to trim); each must hold at least 16 bytes.
func NewTokens(current []byte, previous ...[]byte) (*Tokens, error) {
	t := &Tokens{}
	for i, secret := range append([][]byte{current}, previous...) {
		if len(secret) < minSecretBytes {
			return nil, fmt.Errorf("unsubscribe: secret %d is %d bytes, want at least %d", i, len(secret), minSecretBytes)
		}
		k, err := deriveKey(secret)
		if err != nil {
			return nil, err
		}
		t.keys = append(t.keys, k)
	}
	return t, nil
}

func deriveKey(secret []byte) (tokenKey, error) {
	// 32 bytes for AES-256, 32 for the nonce's HMAC, 1 for the key id.
	b, err := hkdf.Key(sha256.New, secret, nil, hkdfInfo, 65)
	if err != nil {
		return tokenKey{}, err
	}
	block, err := aes.NewCipher(b[:32])
	if err != nil {
		return tokenKey{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return tokenKey{}, err
	}
	return tokenKey{id: b[64], aead: aead, nonce: b[32:64]}, nil
}

// Issue seals c under the current secret. The address is kept as
// optin.Address.String gives it, Issued to the second (clamped to what 32
// bits of Unix seconds hold), and Message as an 8-byte hash (a Message of
// 16 hex digits is taken as such a hash already, as Parse returns it, so
// that a parsed claim issues the same token again; "" stays "").
func (t *Tokens) Issue(c Claim) string { return t.IssueKind(KindUnsubscribe, c) }

// IssueKind seals c as a token of kind k.
func (t *Tokens) IssueKind(k Kind, c Claim) string {
	plain := encodeClaim(c)
	key := t.keys[0]
	mac := hmac.New(sha256.New, key.nonce)
	mac.Write(plain)
	nonce := mac.Sum(nil)[:nonceSize]
	out := make([]byte, headerSize, headerSize+len(plain)+tagSize)
	out[0], out[1] = byte(k), key.id
	copy(out[2:], nonce)
	out = key.aead.Seal(out, nonce, plain, out[:2])
	return tokenEncoding.EncodeToString(out)
}

// Parse opens an unsubscribe token. Every error wraps ErrBadToken.
func (t *Tokens) Parse(s string) (Claim, error) { return t.ParseKind(KindUnsubscribe, s) }

// ParseKind opens a token of kind k; a token of another kind is refused.
// Every error wraps ErrBadToken.
func (t *Tokens) ParseKind(k Kind, s string) (Claim, error) {
	if len(s) > maxTokenChars {
		return Claim{}, fmt.Errorf("%w: malformed: too long", ErrBadToken)
	}
	// The decoder skips CR and LF; a token has one spelling only.
	raw, err := tokenEncoding.DecodeString(s)
	if err != nil || !urlSafe(s) {
		return Claim{}, fmt.Errorf("%w: malformed: not base64url", ErrBadToken)
	}
	if len(raw) < headerSize+tagSize+fixedPlain {
		return Claim{}, fmt.Errorf("%w: malformed: too short", ErrBadToken)
	}
	if raw[0] != byte(k) {
		return Claim{}, fmt.Errorf("%w: malformed: kind %d, want %d", ErrBadToken, raw[0], k)
	}
	plain, err := t.open(raw)
	if err != nil {
		return Claim{}, err
	}
	c, err := decodeClaim(plain)
	if err != nil {
		return Claim{}, fmt.Errorf("%w: malformed: %v", ErrBadToken, err)
	}
	return c, nil
}

// open tries the keys whose id matches. A one-byte id lets a rotation's
// old keys be found without trying each, yet two secrets may share an
// id (1 in 256), so every key with the id is tried.
func (t *Tokens) open(raw []byte) ([]byte, error) {
	nonce, sealed := raw[2:headerSize], raw[headerSize:]
	known := false
	for _, k := range t.keys {
		if k.id != raw[1] {
			continue
		}
		known = true
		plain, err := k.aead.Open(nil, nonce, sealed, raw[:2])
		if err != nil {
			continue
		}
		// The nonce must be the one Issue derives: then each claim has
		// exactly one token, and a token that parses re-issues to itself.
		mac := hmac.New(sha256.New, k.nonce)
		mac.Write(plain)
		if subtle.ConstantTimeCompare(mac.Sum(nil)[:nonceSize], nonce) != 1 {
			continue
		}
		return plain, nil
	}
	if !known {
		return nil, fmt.Errorf("%w: unknown key", ErrBadToken)
	}
	return nil, fmt.Errorf("%w: tampered", ErrBadToken)
}

func encodeClaim(c Claim) []byte {
	addr := c.Subject.String()
	purpose := c.Purpose
	if len(purpose) > math.MaxUint8 {
		purpose = purpose[:math.MaxUint8] // never for a valid purpose name
	}
	b := make([]byte, fixedPlain, fixedPlain+len(purpose)+len(addr))
	binary.BigEndian.PutUint32(b, issuedSeconds(c.Issued))
	copy(b[4:12], messageHash(c.Message))
	b[12] = byte(len(purpose))
	b = append(b, purpose...)
	return append(b, addr...)
}

func decodeClaim(b []byte) (Claim, error) {
	n := int(b[12])
	if len(b) < fixedPlain+n {
		return Claim{}, errors.New("purpose runs past the end")
	}
	purpose := string(b[fixedPlain : fixedPlain+n])
	if purpose == "" {
		return Claim{}, errors.New("no purpose")
	}
	raw := string(b[fixedPlain+n:])
	addr, err := optin.ParseAddress(raw)
	if err != nil || addr.String() != raw {
		return Claim{}, errors.New("not an address in its normal form")
	}
	c := Claim{Subject: addr, Purpose: purpose, Issued: time.Unix(int64(binary.BigEndian.Uint32(b)), 0).UTC()}
	if h := b[4:12]; !isZero(h) {
		c.Message = hex.EncodeToString(h)
	}
	return c, nil
}

// messageHash is the 8 bytes a token keeps of a message key: zero for "",
// the bytes themselves for 16 lowercase hex digits (a parsed claim), else
// the start of its SHA-256.
func messageHash(m string) []byte {
	if m == "" {
		return make([]byte, 8)
	}
	if len(m) == 16 {
		if h, err := hex.DecodeString(m); err == nil && hex.EncodeToString(h) == m {
			return h
		}
	}
	sum := sha256.Sum256([]byte(m))
	return sum[:8]
}

func issuedSeconds(t time.Time) uint32 {
	s := t.Unix()
	switch {
	case t.IsZero() || s < 0:
		return 0
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

// urlSafe reports whether s holds only base64url characters.
func urlSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
