package optin

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	josecipher "github.com/go-jose/go-jose/v4/cipher"
)

// Keyring is the ledger key. It never lives in the store: a
// store holds nothing personal that can be read without it. It has two
// parts:
//
//   - the identity secret, under which subject ids are keyed hashes of
//     the address (SubjectID), so that every instance with the key
//     computes the same ids whatever the store has lost. It is never
//     rotated: the ids would change.
//   - generations, numbered from 1, each a key that wraps subject keys.
//     New subject keys are wrapped under the newest; rotate-key re-wraps
//     every subject key under a new one, and a generation whose wraps
//     are gone can be retired: deleted from the key file, after which a
//     backup taken while subject keys were wrapped under it cannot be
//     read, not even with the key file.
//
// A Keyring is immutable; Rotated and Retired return changed copies.
type Keyring struct {
	id      []byte
	gens    map[uint32]keyGen
	newest  uint32
	created time.Time
	// ids are HMACs keyed with id, reused: a relay names every recipient.
	ids *sync.Pool
}

type keyGen struct {
	key     []byte
	created time.Time
}

// keyringMagic starts the text form of a keyring.
const keyringMagic = "optinproxy-ledger-key-v1"

// NewKeyring returns a new keyring: a random identity secret and one
// random generation.
func NewKeyring(now time.Time) *Keyring {
	return NewKeyringFrom(NewKey(), now)
}

// NewKeyringFrom returns a keyring whose identity secret is id (the
// ledger key an older store kept, so that its subject ids stay) and one
// random generation.
func NewKeyringFrom(id []byte, now time.Time) *Keyring {
	now = now.UTC().Truncate(time.Second)
	return withIDs(&Keyring{id: bytes.Clone(id), gens: map[uint32]keyGen{1: {key: NewKey(), created: now}}, newest: 1, created: now})
}

func withIDs(k *Keyring) *Keyring {
	id := k.id
	k.ids = &sync.Pool{New: func() any { return &idHash{mac: hmac.New(sha256.New, id)} }}
	return k
}

// ParseKeyring reads the text form Marshal writes. Lines may also be
// separated by ";" (for an environment variable); "#" starts a comment.
func ParseKeyring(text []byte) (*Keyring, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: ledger key: %s", ErrBadKey, fmt.Sprintf(format, args...))
	}
	k := &Keyring{gens: map[uint32]keyGen{}}
	magic := false
	for _, line := range strings.FieldsFunc(string(text), func(r rune) bool { return r == '\n' || r == ';' }) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i] // a comment must not hold a ";"
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !magic {
			if len(f) != 1 || f[0] != keyringMagic {
				return nil, bad("does not start with %q (is it a ledger key file?)", keyringMagic)
			}
			magic = true
			continue
		}
		switch f[0] {
		case "id":
			if len(f) < 2 || k.id != nil {
				return nil, bad(`one "id <base64>" line expected`)
			}
			id, err := decodeKey(f[1])
			if err != nil {
				return nil, bad("id: %v", err)
			}
			k.id = id
			if len(f) > 2 {
				k.created, _ = time.Parse(time.RFC3339, f[2])
			}
		case "gen":
			if len(f) < 3 {
				return nil, bad(`"gen <number> <base64>" expected`)
			}
			n, err := strconv.ParseUint(f[1], 10, 32)
			if err != nil || n == 0 {
				return nil, bad("generation %q is not a number from 1", f[1])
			}
			if _, dup := k.gens[uint32(n)]; dup {
				return nil, bad("generation %d appears twice", n)
			}
			key, err := decodeKey(f[2])
			if err != nil {
				return nil, bad("generation %d: %v", n, err)
			}
			g := keyGen{key: key}
			if len(f) > 3 {
				g.created, _ = time.Parse(time.RFC3339, f[3])
			}
			k.gens[uint32(n)] = g
			k.newest = max(k.newest, uint32(n))
		default:
			return nil, bad("unknown line %q", f[0])
		}
	}
	switch {
	case !magic:
		return nil, bad("empty")
	case k.id == nil:
		return nil, bad("no id line")
	case len(k.gens) == 0:
		return nil, bad("no generation")
	}
	return withIDs(k), nil
}

func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64")
	}
	if len(b) != KeySize {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), KeySize)
	}
	return b, nil
}

// Marshal writes the keyring as text, the form of store.key_file.
func (k *Keyring) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# optinproxy ledger key: it unlocks every address and all the evidence in\n")
	b.WriteString("# the consent store. Keep it apart from the store's backups, and keep a copy:\n")
	b.WriteString("# without it the ledger cannot be read. Made by optinproxy: rotate-key adds\n")
	b.WriteString("# generations, rotate-key --retire N removes one.\n")
	b.WriteString(keyringMagic + "\n")
	fmt.Fprintf(&b, "id %s%s\n", base64.StdEncoding.EncodeToString(k.id), stamp(k.created))
	for _, n := range k.Generations() {
		g := k.gens[n]
		fmt.Fprintf(&b, "gen %d %s%s\n", n, base64.StdEncoding.EncodeToString(g.key), stamp(g.created))
	}
	return b.Bytes()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " " + t.UTC().Format(time.RFC3339)
}

// Newest is the generation new subject keys are wrapped under.
func (k *Keyring) Newest() uint32 { return k.newest }

// Generations lists the generations the keyring holds, oldest first.
func (k *Keyring) Generations() []uint32 { return slices.Sorted(maps.Keys(k.gens)) }

// Has reports whether the keyring holds generation n.
func (k *Keyring) Has(n uint32) bool { _, ok := k.gens[n]; return ok }

// Rotated returns a copy with a new newest generation.
func (k *Keyring) Rotated(now time.Time) *Keyring {
	c := k.clone()
	c.newest++
	c.gens[c.newest] = keyGen{key: NewKey(), created: now.UTC().Truncate(time.Second)}
	return c
}

// Retired returns a copy without generation n. The newest cannot be
// retired.
func (k *Keyring) Retired(n uint32) (*Keyring, error) {
	switch {
	case !k.Has(n):
		return nil, fmt.Errorf("%w: the ledger key has no generation %d (it has %s)", ErrBadKey, n, k.generationList())
	case n == k.newest:
		return nil, fmt.Errorf("%w: generation %d is the newest; rotate first", ErrBadKey, n)
	}
	c := k.clone()
	delete(c.gens, n)
	return c, nil
}

func (k *Keyring) generationList() string {
	var s []string
	for _, n := range k.Generations() {
		s = append(s, strconv.FormatUint(uint64(n), 10))
	}
	return strings.Join(s, ", ")
}

func (k *Keyring) clone() *Keyring {
	return &Keyring{id: k.id, gens: maps.Clone(k.gens), newest: k.newest, created: k.created, ids: k.ids}
}

// SameIdentity reports whether o has k's identity secret: the same
// subject ids.
func (k *Keyring) SameIdentity(o *Keyring) bool { return hmac.Equal(k.id, o.id) }

// IdentityIs reports whether id is k's identity secret (the ledger key a
// store of schema version 1 kept).
func (k *Keyring) IdentityIs(id []byte) bool { return hmac.Equal(k.id, id) }

// SubjectID names a subject without its address: the keyed hash of the
// normalized address under the identity secret, 128 bits in lowercase
// base32 (26 characters). It survives erasure; the address does not.
func (k *Keyring) SubjectID(a Address) string {
	m := k.ids.Get().(*idHash)
	defer k.ids.Put(m)
	m.mac.Reset()
	m.buf = a.appendTo(m.buf[:0])
	m.mac.Write(m.buf)
	clear(m.buf) // the pool keeps no address
	var id [26]byte
	b32.Encode(id[:], m.mac.Sum(m.sum[:0])[:16])
	return string(id[:])
}

// idHash is SubjectID's reused state, with room for the address and the
// sum: a relay computes an id for every recipient, twice a message.
type idHash struct {
	mac hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// Check is what a store keeps to recognize its key: a keyed hash of a
// fixed text under the identity secret, in hex. It reveals nothing of
// the key.
func (k *Keyring) Check() string {
	m := hmac.New(sha256.New, k.id)
	m.Write([]byte("optinproxy ledger key check"))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Derive returns a key for one use (such as "journal") derived from the
// identity secret.
func (k *Keyring) Derive(use string) []byte { return derive(k.id, "optinproxy "+use) }

// Wrap seals a subject key under the newest generation: the generation
// (uvarint) and the AES key wrap of RFC 3394 (40 bytes; 41 in all, so
// that Redis keeps the state in its compact form). The key-encryption
// key is derived from the generation's key and the subject id, so a wrap
// moved to another subject does not open.
func (k *Keyring) Wrap(sid string, subjectKey []byte) []byte {
	w, _ := k.WrapAt(k.newest, sid, subjectKey)
	return w
}

// WrapAt is Wrap under generation gen, or under the newest when the
// keyring lacks gen: a store that has not yet been rotated to a
// generation the key file already has (rotate-key --prepare) keeps
// wrapping under its own, which every instance can read.
func (k *Keyring) WrapAt(gen uint32, sid string, subjectKey []byte) ([]byte, uint32) {
	g, ok := k.gens[gen]
	if !ok || gen == 0 {
		gen, g = k.newest, k.gens[k.newest]
	}
	w, err := josecipher.KeyWrap(wrapCipher(g.key, sid, gen), subjectKey)
	if err != nil {
		panic(err) // only for keys not a multiple of 8 bytes
	}
	return append(binary.AppendUvarint(nil, uint64(gen)), w...), gen
}

// Unwrap opens a Wrap. An unknown generation is an error wrapping
// ErrKeyGeneration; a wrap that does not open, one wrapping ErrCorrupt.
func (k *Keyring) Unwrap(sid string, wrapped []byte) ([]byte, error) {
	n, ok := WrapGeneration(wrapped)
	if !ok {
		return nil, fmt.Errorf("%w: subject %s: wrapped key of %d bytes", ErrCorrupt, sid, len(wrapped))
	}
	g, have := k.gens[n]
	if !have {
		return nil, fmt.Errorf("%w %d (the ledger key has %s): subject %s", ErrKeyGeneration, n, k.generationList(), sid)
	}
	_, used := binary.Uvarint(wrapped)
	key, err := josecipher.KeyUnwrap(wrapCipher(g.key, sid, n), wrapped[used:])
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("%w: subject %s: its key does not open under generation %d", ErrCorrupt, sid, n)
	}
	return key, nil
}

// WrapGeneration reads the generation a Wrap was made under.
func WrapGeneration(wrapped []byte) (uint32, bool) {
	n, used := binary.Uvarint(wrapped)
	if used <= 0 || n == 0 || n > 1<<31 || len(wrapped) != used+KeySize+8 {
		return 0, false
	}
	return uint32(n), true
}

// wrapCipher is the key-encryption key of one subject under one
// generation.
func wrapCipher(genKey []byte, sid string, gen uint32) cipher.Block {
	block, err := aes.NewCipher(derive(genKey, fmt.Sprintf("optinproxy subject key\x00%s\x00%d", sid, gen)))
	if err != nil {
		panic(err)
	}
	return block
}

// derive is HKDF-Expand (SHA-256) of secret for one use: the secrets are
// random keys already, so the extract step is not needed (RFC 5869
// section 3.3), and the relay derives a key per receipt.
func derive(secret []byte, use string) []byte {
	k, err := hkdf.Expand(sha256.New, secret, use, KeySize)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give
	}
	return k
}
