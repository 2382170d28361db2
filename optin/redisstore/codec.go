package redisstore

import (
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"optinproxy/optin"
)

// Format bytes: every consent record, event and receipt starts with one.
const (
	formatV1 = 1 // events of the main chain; consent records without gaps
	formatV2 = 2 // consent records with gaps; receipts
	formatV3 = 3 // consent records with policy version and notice time
)

// Codes for the values that nearly every record or event repeats; 0 means
// the text follows. Append only: stored data refers to them by position.
var (
	statusCodes = []string{"", string(optin.StatusGranted), string(optin.StatusPending), string(optin.StatusWithdrawn), string(optin.StatusExpired)}
	basisCodes  = func() []string {
		c := []string{""}
		for _, b := range optin.Bases {
			c = append(c, string(b))
		}
		return c
	}()
	typeCodes = []string{"",
		string(optin.EventConsentGranted), string(optin.EventConsentPending), string(optin.EventConsentWithdrawn),
		string(optin.EventConsentExpired), string(optin.EventConsentExpiring), string(optin.EventSubjectUpdated),
		string(optin.EventSubjectErased), string(optin.EventSuppressionAdded), string(optin.EventSuppressionRemoved),
		string(optin.EventMessageRelayed), string(optin.EventMessageBlocked),
		string(optin.EventErasureScheduled), string(optin.EventErasureCancelled),
	}
)

// Tags of the fields that have a compact form.
const (
	tagNone  = 0 // empty string, zero time
	tagSame  = 1 // granted: equal to updated
	tagDelta = 2 // a time as the difference from updated
	tagRaw   = 1 // an id or hash in its raw bytes
	tagText  = 2 // an id, hash or name as its text
	tagCode  = 3 // a name as its code
)

// b32 is base32 (RFC 4648) in lower case, without padding: the form of
// subject and event ids.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

var errShort = errors.New("truncated")

// encodeConsent writes c and the index of its event in the subject's
// list (-1 for unknown) in the form doc.go describes.
func encodeConsent(c optin.Consent, index int64) []byte {
	b := make([]byte, 0, 56+len(c.Source)+len(c.PolicyVersion))
	b = append(b, formatV3)
	b = appendCoded(b, statusCodes, string(c.Status))
	b = appendCoded(b, basisCodes, string(c.Basis))
	b = appendString(b, c.Source)
	updated := unixNano(c.UpdatedAt)
	b = binary.AppendVarint(b, updated)
	switch {
	case c.GrantedAt.IsZero():
		b = append(b, tagNone)
	case unixNano(c.GrantedAt) == updated && !c.UpdatedAt.IsZero():
		b = append(b, tagSame)
	default:
		b = append(b, tagDelta)
		b = binary.AppendVarint(b, unixNano(c.GrantedAt)-updated)
	}
	if c.ExpiresAt.IsZero() {
		b = append(b, tagNone)
	} else {
		b = append(b, tagDelta)
		b = binary.AppendVarint(b, unixNano(c.ExpiresAt)-updated)
	}
	b = appendID(b, c.EventID)
	b = binary.AppendUvarint(b, uint64(index+1))
	b = append(b, byte(c.Gaps))
	b = appendString(b, c.PolicyVersion)
	if c.NoticedAt.IsZero() {
		return append(b, tagNone)
	}
	b = append(b, tagDelta)
	return binary.AppendVarint(b, unixNano(c.NoticedAt)-updated)
}

// decodeConsent reads encodeConsent's form, and format 1 (without
// gaps). The index is -1 when unknown.
func decodeConsent(a optin.Address, purpose string, s string) (optin.Consent, int64, error) {
	if s == "" || s[0] != formatV1 && s[0] != formatV2 && s[0] != formatV3 {
		return optin.Consent{}, -1, fmt.Errorf("%w: consent record of unknown format", optin.ErrCorrupt)
	}
	format := s[0]
	d := decoder{s: s[1:]}
	c := optin.Consent{Subject: a, Purpose: purpose}
	c.Status = optin.Status(d.coded(statusCodes))
	c.Basis = optin.Basis(d.coded(basisCodes))
	c.Source = d.string()
	updated := d.varint()
	c.UpdatedAt = fromUnixNano(updated)
	switch d.byte() {
	case tagNone:
	case tagSame:
		c.GrantedAt = c.UpdatedAt
	case tagDelta:
		c.GrantedAt = fromUnixNano(updated + d.varint())
	default:
		d.fail("granted tag")
	}
	switch d.byte() {
	case tagNone:
	case tagDelta:
		c.ExpiresAt = fromUnixNano(updated + d.varint())
	default:
		d.fail("expires tag")
	}
	c.EventID = d.id()
	index := int64(d.uvarint()) - 1
	if format >= formatV2 {
		c.Gaps = optin.ProofGaps(d.byte())
	}
	if format >= formatV3 {
		c.PolicyVersion = d.string()
		switch d.byte() {
		case tagNone:
		case tagDelta:
			c.NoticedAt = fromUnixNano(updated + d.varint())
		default:
			d.fail("noticed tag")
		}
	}
	if err := d.done(); err != nil {
		return optin.Consent{}, -1, fmt.Errorf("%w: consent record of %q: %v", optin.ErrCorrupt, purpose, err)
	}
	return c, index, nil
}

// encodeEvent writes a sealed event in the form doc.go describes. The
// subject id is left out: it is the list's.
func encodeEvent(e *optin.SealedEvent) []byte {
	b := make([]byte, 0, 128+len(e.Sealed)+len(e.Actor))
	b = append(b, formatV1)
	b = appendID(b, e.ID)
	b = binary.AppendVarint(b, e.Time.UnixNano())
	b = appendCoded(b, typeCodes, string(e.Type))
	b = appendString(b, e.Purpose)
	b = appendString(b, e.Actor)
	b = appendString(b, string(e.Sealed))
	b = appendHash(b, e.Prev)
	return appendHash(b, e.Hash)
}

// decodeEvent reads encodeEvent's form back for the subject sid.
func decodeEvent(sid, s string) (optin.SealedEvent, error) {
	if s == "" || s[0] != formatV1 {
		return optin.SealedEvent{}, fmt.Errorf("%w: event of subject %s: unknown format", optin.ErrCorrupt, sid)
	}
	d := decoder{s: s[1:]}
	e := optin.SealedEvent{SubjectID: sid}
	e.ID = d.id()
	e.Time = time.Unix(0, d.varint()).UTC()
	e.Type = optin.EventType(d.coded(typeCodes))
	e.Purpose = d.string()
	e.Actor = d.string()
	if sealed := d.string(); sealed != "" {
		e.Sealed = []byte(sealed)
	}
	e.Prev = d.hash()
	e.Hash = d.hash()
	if err := d.done(); err != nil {
		return optin.SealedEvent{}, fmt.Errorf("%w: event of subject %s: %v", optin.ErrCorrupt, sid, err)
	}
	return e, nil
}

// encodeReceipt writes a sealed receipt in the form doc.go describes: no
// subject id (the list's), no time (its id's), no prev (the hash of the
// entry before it, or the state's rp): a receipt is stored once per
// recipient of every message, so every byte counts.
// encodeReceipt writes a sealed receipt; purpose and actor are their
// codes (see names.go), "" to write the text.
func encodeReceipt(e *optin.SealedEvent, purpose, actor string) []byte {
	id, ok := rawID(e.ID)
	var hash [optin.ReceiptHashSize]byte
	if !ok || len(e.Hash) != 2*len(hash) {
		panic("redisstore: a receipt without a canonical id or hash")
	}
	if _, err := hex.Decode(hash[:], []byte(e.Hash)); err != nil {
		panic("redisstore: a receipt without a canonical id or hash")
	}
	b := make([]byte, 0, 48+len(e.Sealed)+len(e.Actor)+len(e.Purpose))
	b = append(b, formatV2)
	b = append(b, id[:]...)
	b = appendCoded(b, typeCodes, string(e.Type))
	b = appendName(b, e.Purpose, purpose)
	b = appendName(b, e.Actor, actor)
	b = appendString(b, string(e.Sealed))
	return append(b, hash[:]...)
}

// appendName writes a name as tagCode and its code, or as tagText and
// the text.
func appendName(b []byte, name, code string) []byte {
	if len(code) == codeSize {
		return append(append(b, tagCode), code...)
	}
	return appendString(append(b, tagText), name)
}

// decodeReceipt reads encodeReceipt's form of subject sid, whose
// predecessor's hash is prev; resolve turns a name's code back.
func decodeReceipt(sid, s, prev string, resolve func(code string) (string, error)) (optin.SealedEvent, error) {
	const h = optin.ReceiptHashSize
	if len(s) < 1+16+h || s[0] != formatV2 {
		return optin.SealedEvent{}, fmt.Errorf("%w: receipt of subject %s: unknown format", optin.ErrCorrupt, sid)
	}
	d := decoder{s: s[1 : len(s)-h]}
	e := optin.SealedEvent{SubjectID: sid, Receipt: true, Prev: prev, Hash: hex.EncodeToString([]byte(s[len(s)-h:]))}
	e.ID = receiptID(s)
	d.take(16)
	e.Time = optin.IDTime(e.ID)
	e.Type = optin.EventType(d.coded(typeCodes))
	var codes [2]string
	for i, to := range []*string{&e.Purpose, &e.Actor} {
		switch d.byte() {
		case tagCode:
			codes[i] = d.take(codeSize)
		case tagText:
			*to = d.string()
		default:
			d.fail("name tag")
		}
	}
	if sealed := d.string(); sealed != "" {
		e.Sealed = []byte(sealed)
	}
	if err := d.done(); err != nil {
		return optin.SealedEvent{}, fmt.Errorf("%w: receipt of subject %s: %v", optin.ErrCorrupt, sid, err)
	}
	for i, to := range []*string{&e.Purpose, &e.Actor} {
		if codes[i] == "" {
			continue
		}
		name, err := resolve(codes[i])
		if err != nil {
			return optin.SealedEvent{}, fmt.Errorf("redisstore: receipt of subject %s: %w", sid, err)
		}
		*to = name
	}
	return e, nil
}

// tailHash is the hash an encoded event ends with, raw, as the write
// script reads it ("" for none).
func tailHash(s string) string {
	if len(s) < 33 {
		return ""
	}
	return s[len(s)-32:]
}

// receiptID is the event id of an encoded receipt (its format byte, then
// the id's 16 bytes), "" when s is too short to hold one.
func receiptID(s string) string {
	if len(s) < 1+16 {
		return ""
	}
	return encodeID(s[1:17])
}

// encodeID is the text of a raw 16-byte id, encoded on the stack.
func encodeID(raw string) string {
	if len(raw) != 16 {
		return b32.EncodeToString([]byte(raw))
	}
	var src [16]byte
	var id [26]byte
	copy(src[:], raw)
	b32.Encode(id[:], src[:])
	return string(id[:])
}

// receiptTailHash is tailHash for a receipt, whose hash is shorter.
func receiptTailHash(s string) string {
	if len(s) < 1+optin.ReceiptHashSize {
		return ""
	}
	return s[len(s)-optin.ReceiptHashSize:]
}

// rawID returns the 16 bytes of a canonical event id. It decodes and
// checks on the stack: it runs for every event and receipt written.
func rawID(id string) ([16]byte, bool) {
	var raw [16]byte
	if len(id) != 26 {
		return raw, false
	}
	var src, back [26]byte
	copy(src[:], id)
	if n, err := b32.Decode(raw[:], src[:]); err != nil || n != 16 {
		return raw, false
	}
	b32.Encode(back[:], raw[:])
	return raw, string(back[:]) == id
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendCoded(b []byte, codes []string, s string) []byte {
	for i, c := range codes[1:] {
		if s == c {
			return binary.AppendUvarint(b, uint64(i+1))
		}
	}
	return appendString(append(b, 0), s)
}

// appendID writes an event id, in 16 bytes when it is the canonical
// lowercase base32 of 16 bytes (optin.NewEventID).
func appendID(b []byte, id string) []byte {
	if id == "" {
		return append(b, tagNone)
	}
	if raw, ok := rawID(id); ok {
		return append(append(b, tagRaw), raw[:]...)
	}
	return appendString(append(b, tagText), id)
}

// appendHash writes a hash, in 32 bytes when it is lowercase hex.
func appendHash(b []byte, h string) []byte {
	if h == "" {
		return append(b, tagNone)
	}
	if raw, ok := rawHash(h); ok {
		return append(append(b, tagRaw), raw...)
	}
	return appendString(append(b, tagText), h)
}

// rawHash returns the 32 bytes of a SHA-256 in lowercase hex.
func rawHash(h string) ([]byte, bool) {
	if len(h) != 64 {
		return nil, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || hex.EncodeToString(raw) != h {
		return nil, false
	}
	return raw, true
}

// decoder reads the compact forms; the first error sticks.
type decoder struct {
	s   string
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s", what)
	}
	d.s = ""
}

func (d *decoder) done() error {
	if d.err == nil && d.s != "" {
		d.err = errors.New("trailing bytes")
	}
	return d.err
}

func (d *decoder) byte() byte {
	if d.s == "" {
		if d.err == nil {
			d.err = errShort
		}
		return 0xff
	}
	c := d.s[0]
	d.s = d.s[1:]
	return c
}

func (d *decoder) take(n uint64) string {
	if uint64(len(d.s)) < n {
		if d.err == nil {
			d.err = errShort
		}
		d.s = ""
		return ""
	}
	v := d.s[:n]
	d.s = d.s[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint([]byte(d.s[:min(len(d.s), binary.MaxVarintLen64)]))
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.s = d.s[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint([]byte(d.s[:min(len(d.s), binary.MaxVarintLen64)]))
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.s = d.s[n:]
	return v
}

func (d *decoder) string() string { return d.take(d.uvarint()) }

func (d *decoder) coded(codes []string) string {
	i := d.uvarint()
	switch {
	case i == 0:
		return d.string()
	case i < uint64(len(codes)):
		return codes[i]
	}
	d.fail("code")
	return ""
}

func (d *decoder) id() string {
	switch d.byte() {
	case tagNone:
		return ""
	case tagRaw:
		return encodeID(d.take(16))
	case tagText:
		return d.string()
	}
	d.fail("id tag")
	return ""
}

func (d *decoder) hash() string {
	switch d.byte() {
	case tagNone:
		return ""
	case tagRaw:
		return hex.EncodeToString([]byte(d.take(32)))
	case tagText:
		return d.string()
	}
	d.fail("hash tag")
	return ""
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
