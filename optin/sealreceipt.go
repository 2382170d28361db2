package optin

import (
	"crypto/cipher"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Receipts are sealed in a compact form of their own, since a busy relay
// writes one per recipient of every message (at most 200
// bytes of Redis memory each): the details in a binary form rather than
// JSON, the address left out (the subject's state holds it), and the
// nonce taken from the event id rather than stored.

// receiptKey is the key a subject's receipts are sealed under: derived
// from the subject key, so erasure destroys it too, and used for nothing
// else, so that the id-derived nonces cannot meet another use's. Its tag
// is 12 bytes: a receipt's sealed details are short and many.
func receiptKey(subjectKey []byte) cipher.AEAD {
	return shortGCM(derive(subjectKey, "optinproxy receipt"))
}

// SealReceipt turns a message.relayed or message.blocked event into its
// stored form under the subject's key. The event's ID must be a
// NewEventID (its random part is the nonce) and its Time the one the ID
// carries; Details must be ReceiptDetails.
func SealReceipt(key []byte, sid string, e Event) (SealedEvent, error) {
	return sealReceipt(key, sid, e, nil)
}

// sealReceipt is SealReceipt with the details given, when d is not nil.
func sealReceipt(key []byte, sid string, e Event, d *ReceiptDetails) (SealedEvent, error) {
	raw, ok := eventIDBytes(e.ID)
	if !ok {
		return SealedEvent{}, fmt.Errorf("%w: receipt id %q is not an event id", ErrBadInput, e.ID)
	}
	if !e.Time.Equal(IDTime(e.ID)) {
		return SealedEvent{}, fmt.Errorf("%w: receipt %s: time %s is not its id's", ErrBadInput, e.ID, e.Time.Format(time.RFC3339Nano))
	}
	if d == nil {
		d = new(ReceiptDetails)
		if err := json.Unmarshal(e.Details, d); err != nil {
			return SealedEvent{}, fmt.Errorf("%w: receipt %s: details: %v", ErrBadInput, e.ID, err)
		}
	}
	aead := receiptKey(key)
	return SealedEvent{
		ID: e.ID, Time: e.Time.UTC(), Type: e.Type, SubjectID: sid, Purpose: e.Purpose, Actor: e.Actor, Receipt: true,
		Sealed: aead.Seal(nil, raw[4:], d.appendBinary(nil), []byte(e.ID+"\x00"+sid)),
	}, nil
}

// openReceipt reads a sealed receipt back (see Open).
func openReceipt(key []byte, s SealedEvent, e Event) (Event, error) {
	raw, ok := eventIDBytes(s.ID)
	if !ok {
		return e, fmt.Errorf("%w: receipt id %q", ErrCorrupt, s.ID)
	}
	plain, err := receiptKey(key).Open(nil, raw[4:], s.Sealed, []byte(s.ID+"\x00"+s.SubjectID))
	if err != nil {
		return e, fmt.Errorf("%w: receipt %s: %v", ErrCorrupt, s.ID, err)
	}
	d, err := decodeReceiptDetails(plain)
	if err != nil {
		return e, fmt.Errorf("%w: receipt %s: %v", ErrCorrupt, s.ID, err)
	}
	if e.Details, err = json.Marshal(d); err != nil {
		return e, err
	}
	return e, nil
}

// IsReceipt reports whether events of type t are message receipts, kept
// in a chain of their own.
func (t EventType) IsReceipt() bool {
	return t == EventMessageRelayed || t == EventMessageBlocked
}

// Flags of the binary receipt details.
const (
	receiptAllow = 1 << iota
	receiptMonitor
	receiptAtRcpt
	receiptUncertain
	receiptBracketed // the message id had <> around it, left out
)

// reasonCodes are the reasons a receipt names most; 0 means the text
// follows. Append only: stored receipts refer to them by position.
var reasonCodes = []Reason{"",
	ReasonConsent, ReasonLegitimateInterests, ReasonRoleAddress, ReasonTransactional, ReasonLegal,
	ReasonNoConsent, ReasonWithdrawn, ReasonExpired, ReasonPendingConfirmation,
	SuppressedReason(SuppressUnsubscribedAll), SuppressedReason(SuppressHardBounce), SuppressedReason(SuppressComplaint),
	SuppressedReason(SuppressErased), SuppressedReason(SuppressManual),
}

// appendBinary writes d as: flags, the reason (code or 0 and the text),
// the message id, the queue id (10 raw bytes after a 10 when it is the
// relay's lowercase base32 of 10 bytes, else its text after a 0), and the
// consent event (16 raw bytes after a 16 when it is an event id, else its
// text after a 0).
func (d ReceiptDetails) appendBinary(b []byte) []byte {
	var flags byte
	if d.Decision == "allow" {
		flags |= receiptAllow
	}
	if d.Mode == "monitor" {
		flags |= receiptMonitor
	}
	if d.Stage == "rcpt" {
		flags |= receiptAtRcpt
	}
	if d.Uncertain {
		flags |= receiptUncertain
	}
	mid := d.MessageID
	if len(mid) >= 2 && mid[0] == '<' && mid[len(mid)-1] == '>' {
		flags |= receiptBracketed
		mid = mid[1 : len(mid)-1]
	}
	b = append(b, flags)
	code := 0
	for i, r := range reasonCodes[1:] {
		if d.Reason == r {
			code = i + 1
		}
	}
	b = binary.AppendUvarint(b, uint64(code))
	if code == 0 {
		b = appendBytes(b, string(d.Reason))
	}
	b = appendBytes(b, mid)
	if raw, ok := queueIDBytes(d.QueueID); ok {
		b = append(append(b, 10), raw...)
	} else {
		b = appendBytes(append(b, 0), d.QueueID)
	}
	if raw, ok := eventIDBytes(d.ConsentEvent); ok {
		return append(append(b, 16), raw[:]...)
	}
	return appendBytes(append(b, 0), d.ConsentEvent)
}

func decodeReceiptDetails(b []byte) (ReceiptDetails, error) {
	r := byteReader{b: b}
	var d ReceiptDetails
	flags := r.byte()
	d.Decision = "block"
	if flags&receiptAllow != 0 {
		d.Decision = "allow"
	}
	if flags&receiptMonitor != 0 {
		d.Mode = "monitor"
	}
	if flags&receiptAtRcpt != 0 {
		d.Stage = "rcpt"
	}
	d.Uncertain = flags&receiptUncertain != 0
	switch code := r.uvarint(); {
	case code == 0:
		d.Reason = Reason(r.string())
	case code < uint64(len(reasonCodes)):
		d.Reason = reasonCodes[code]
	default:
		r.err = errors.New("unknown reason code")
	}
	d.MessageID = r.string()
	if flags&receiptBracketed != 0 {
		d.MessageID = "<" + d.MessageID + ">"
	}
	switch r.byte() {
	case 10:
		d.QueueID = (b32.EncodeToString(r.take(10)))
	case 0:
		d.QueueID = r.string()
	default:
		r.err = errors.New("bad queue id tag")
	}
	switch r.byte() {
	case 16:
		var raw [16]byte
		copy(raw[:], r.take(16))
		d.ConsentEvent = (b32.EncodeToString(raw[:]))
	case 0:
		d.ConsentEvent = r.string()
	default:
		r.err = errors.New("bad consent event tag")
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	return d, r.err
}

func appendBytes(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// byteReader reads the binary forms; the first error sticks.
type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) fail() {
	if r.err == nil {
		r.err = errors.New("truncated")
	}
	r.b = nil
}

func (r *byteReader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0xff
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *byteReader) take(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *byteReader) string() string { return string(r.take(r.uvarint())) }

// queueIDBytes decodes a queue id of the relay's form: 10 random bytes in
// lowercase base32 (16 characters).
func queueIDBytes(id string) ([]byte, bool) {
	if len(id) != 16 {
		return nil, false
	}
	raw, err := b32.DecodeString(id)
	if err != nil || len(raw) != 10 || (b32.EncodeToString(raw)) != id {
		return nil, false
	}
	return raw, true
}

// eventIDBytes decodes an id of NewEventID's form.
func eventIDBytes(id string) ([16]byte, bool) {
	var raw [16]byte
	if len(id) != 26 {
		return raw, false
	}
	n, err := b32.Decode(raw[:], []byte(id))
	if err != nil || n != 16 || (b32.EncodeToString(raw[:])) != id {
		return raw, false
	}
	return raw, true
}

// IDTime is the time a NewEventID carries (to the millisecond); the zero
// time for another id.
func IDTime(id string) time.Time {
	raw, ok := eventIDBytes(id)
	if !ok {
		return time.Time{}
	}
	var ms uint64
	for _, c := range raw[:6] {
		ms = ms<<8 | uint64(c)
	}
	return time.UnixMilli(int64(ms)).UTC()
}
