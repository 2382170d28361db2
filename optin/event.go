package optin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// EventType names what an event records.
type EventType string

const (
	EventConsentGranted     EventType = "consent.granted"
	EventConsentPending     EventType = "consent.pending"
	EventConsentWithdrawn   EventType = "consent.withdrawn"
	EventConsentExpired     EventType = "consent.expired"
	EventConsentExpiring    EventType = "consent.expiring"
	EventSubjectUpdated     EventType = "subject.updated"
	EventSubjectErased      EventType = "subject.erased"
	EventSuppressionAdded   EventType = "suppression.added"
	EventSuppressionRemoved EventType = "suppression.removed"
	EventMessageRelayed     EventType = "message.relayed"
	EventMessageBlocked     EventType = "message.blocked"
	// An erasure set for a later time, and its cancellation.
	EventErasureScheduled EventType = "erasure.scheduled"
	EventErasureCancelled EventType = "erasure.cancelled"
)

// Event is one entry of the audit log as the API shows it. Events are
// never edited: each carries the hash of its subject's previous event
// (Prev) and its own (Hash), so a subject's history is a chain.
type Event struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Type    EventType `json:"type"`
	Subject Address   `json:"subject"`
	Purpose string    `json:"purpose,omitempty"`
	Actor   string    `json:"actor"`
	// Details is a JSON object; for consent events it holds "basis",
	// "source", "status" and "evidence".
	Details json.RawMessage `json:"details,omitempty"`
	Prev    string          `json:"prev"`
	Hash    string          `json:"hash"`
	// Erased is true when the subject's key is gone: Subject and Details
	// can no longer be read, the chain still verifies.
	Erased bool `json:"erased,omitempty"`
}

// SealedEvent is an event as stored: the personal fields (the address
// and the details) encrypted with the subject's own key, the subject named
// by its keyed hash. Stores keep exactly these fields.
type SealedEvent struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Type      EventType `json:"type"`
	SubjectID string    `json:"sid"`
	Purpose   string    `json:"purpose,omitempty"`
	Actor     string    `json:"actor"`
	Sealed    []byte    `json:"sealed"`
	Prev      string    `json:"prev"`
	Hash      string    `json:"hash"`
	// Receipt is true for a message receipt (SealReceipt's form), kept
	// in the subject's receipt chain; false for the events of its main
	// chain (Seal's form). The stores know it from where they keep it.
	Receipt bool `json:"-"`
}

// ComputeHash is the SHA-256, in hex, over the sealed event with Prev and
// without Hash. Each field is length-prefixed, so no two different events
// encode alike. A receipt's hash is the first 16 bytes of it (32 hex
// digits), under another label: receipts are the bulk of the log, and
// 128 bits still take 2^128 tries to forge one that fits a chain.
func (e *SealedEvent) ComputeHash() string {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	if e.Receipt {
		put("optinproxy-receipt-v1")
	} else {
		put("optinproxy-event-v1")
	}
	put(e.ID)
	put(strconv.FormatInt(e.Time.UnixNano(), 10))
	put(string(e.Type))
	put(e.SubjectID)
	put(e.Purpose)
	put(e.Actor)
	put(string(e.Sealed))
	put(e.Prev)
	sum := h.Sum(nil)
	if e.Receipt {
		sum = sum[:ReceiptHashSize]
	}
	return hex.EncodeToString(sum)
}

// ReceiptHashSize is the size in bytes of a receipt's hash.
const ReceiptHashSize = 16

// Intact reports whether the event's hash matches its content and it
// follows prev.
func (e *SealedEvent) Intact(prev string) bool {
	return e.Prev == prev && e.Hash == e.ComputeHash()
}

// NewEventID returns a unique id that sorts by time: 48 bits of Unix
// milliseconds, then 80 random bits, in lowercase base32 (26 characters).
func NewEventID(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return (b32.EncodeToString(b[:]))
}
