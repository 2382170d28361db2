package redisstore

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"

	"optinproxy/optin"
)

// DefaultPrefix starts every key when Options.Prefix is empty.
const DefaultPrefix = "optin:"

// schemaVersion is the layout doc.go describes; Open migrates version 1
// (the layout that kept the ledger key, subject keys and addresses in
// the clear) and refuses others.
const (
	schemaVersion = "2"
	schemaV1      = "1"
)

// Fields of the state hash.
const (
	fieldSealedAddress = "p"  // the address, sealed under the subject key
	fieldWrappedKey    = "w"  // the subject key, wrapped under the ledger key
	fieldPruned        = "ro" // receipts pruned: the absolute index of the list's first
	fieldPrunedHead    = "rp" // the hash of the last pruned receipt, raw
	fieldKeyFrom       = "ke" // "E.R": where the subject key's events start (see keyFrom)
	fieldErasureAt     = "ea" // a scheduled erasure's time, Unix ns
	consentPrefix      = "c:"
	suppressPrefix     = "x:"

	// Fields of schema version 1, read by the migration only.
	fieldAddressV1 = "a"
	fieldKeyV1     = "k"
	fieldCountV1   = "n"
)

// Fields of the meta hash.
const (
	metaVersion    = "v"
	metaKeyCheck   = "kc" // optin.Keyring.Check
	metaEpoch      = "e"  // random, made with the hash: the marker of the data
	metaGeneration = "g"  // the newest key generation in use
	metaMigrating  = "m"  // set while version 1 is migrated
	metaLedgerV1   = "lk" // schema version 1's ledger key
)

// Fields of the feed entries.
const (
	feedRefs         = "r" // version 2: packed references (see appendRef)
	feedFieldSubject = "s" // version 1: the subject id
	feedFieldIndex   = "i" // version 1: the event's index in the list
)

// reasons are the suppression reasons in the order stores list them.
var reasons = []optin.SuppressionReason{
	optin.SuppressUnsubscribedAll, optin.SuppressHardBounce, optin.SuppressComplaint,
	optin.SuppressErased, optin.SuppressManual,
}

// keys names the store's keys under one prefix.
type keys struct{ prefix string }

func (k keys) meta() string { return k.prefix + "meta" }

func (k keys) feed() string { return k.prefix + "events" }
func (k keys) supp() string { return k.prefix + "supp" }

// erasures is the sorted set of the subjects with a scheduled erasure,
// scored by when it is due in Unix ms.
func (k keys) erasures() string { return k.prefix + "erasures" }
func (k keys) names() string    { return k.prefix + "names" }
func (k keys) lease(job string) string {
	return k.prefix + "lease:" + job
}
func (k keys) state(sid string) string {
	return k.prefix + "{" + sid + "}:s"
}
func (k keys) events(sid string) string {
	return k.prefix + "{" + sid + "}:e"
}
func (k keys) receipts(sid string) string {
	return k.prefix + "{" + sid + "}:r"
}

// appendSubject writes the key of one of subject sid's structures,
// named by its suffix letter (s, e, r or d), as state, events, receipts
// and marks spell it.
func (k keys) appendSubject(b *strings.Builder, sid string, suffix byte) {
	b.WriteString(k.prefix)
	b.WriteByte('{')
	b.WriteString(sid)
	b.WriteString("}:")
	b.WriteByte(suffix)
}

// subjectKeys returns, for each subject id in turn, the keys of its
// structures named by the suffix letters (see appendSubject), all made
// in one string: a lookup or a write names several keys per subject.
func (k keys) subjectKeys(sids []string, suffixes string) []string {
	if len(sids) == 0 {
		return nil
	}
	var b strings.Builder
	b.Grow(len(sids) * len(suffixes) * (len(k.prefix) + len(sids[0]) + 4))
	for _, sid := range sids {
		for i := range len(suffixes) {
			k.appendSubject(&b, sid, suffixes[i])
		}
	}
	all, off := b.String(), 0
	out := make([]string, 0, len(sids)*len(suffixes))
	for _, sid := range sids {
		size := len(k.prefix) + len(sid) + 4 // as appendSubject writes it
		for range len(suffixes) {
			out = append(out, all[off:off+size])
			off += size
		}
	}
	return out
}

// marks is the sorted set of a subject's delivery marks (see markMember).
func (k keys) marks(sid string) string {
	return k.prefix + "{" + sid + "}:d"
}

// markV1 is schema version 1's key of a delivery mark, read by the
// migration only.
func (k keys) markV1Pattern() string {
	return globEscape(k.prefix) + "{*}:d:*"
}

// statePattern matches every state key, for SCAN.
func (k keys) statePattern() string {
	return globEscape(k.prefix) + "{*}:s"
}

// sidOf returns the subject id in a state or event list key.
func (k keys) sidOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.prefix+"{")
	if !ok {
		return "", false
	}
	sid, _, ok := strings.Cut(rest, "}")
	return sid, ok && sid != ""
}

// markMember is a delivery mark's member in its subject's marks: the
// first 8 bytes of optin.MessageHash. Per subject, within one dedup
// window, 64 bits do not collide.
func markMember(message string) string {
	sum := sha256.Sum256([]byte(message)) // optin.MessageHash, on the stack
	return string(sum[:8])
}

// globEscape quotes the characters SCAN's MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Chains of a feed reference.
const (
	chainMain    = 'e'
	chainReceipt = 'r'
)

// ref is one event of the feed: a subject, its chain, and the event's
// absolute index in that chain.
type ref struct {
	sid   string
	chain byte
	index int64
}

// appendRef packs a reference: the subject id's 16 raw bytes, then the
// index times two plus one for the receipt chain, as a uvarint (18
// bytes for a chain of up to 8191).
func appendRef(b []byte, r ref) []byte {
	var src [26]byte
	var raw [16]byte
	if len(r.sid) != len(src) {
		panic("redisstore: subject id " + r.sid + " is not 16 bytes of base32")
	}
	copy(src[:], r.sid) // decoded on the stack: a feed entry names every change
	if n, err := b32.Decode(raw[:], src[:]); err != nil || n != len(raw) {
		panic("redisstore: subject id " + r.sid + " is not 16 bytes of base32")
	}
	b = append(b, raw[:]...)
	v := uint64(r.index) << 1
	if r.chain == chainReceipt {
		v |= 1
	}
	return binary.AppendUvarint(b, v)
}

// refs unpacks a feed entry's references.
func refs(packed string) ([]ref, bool) {
	var out []ref
	for len(packed) > 0 {
		if len(packed) < 17 {
			return nil, false
		}
		v, n := binary.Uvarint([]byte(packed[16:min(len(packed), 16+binary.MaxVarintLen64)]))
		if n <= 0 {
			return nil, false
		}
		r := ref{sid: encodeID(packed[:16]), chain: chainMain, index: int64(v >> 1)}
		if v&1 == 1 {
			r.chain = chainReceipt
		}
		out = append(out, r)
		packed = packed[16+n:]
	}
	return out, true
}
