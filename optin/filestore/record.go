package filestore

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// record is a subject as the subjects bucket keeps it: optin.SubjectState
// without its secrets in the clear, plus what the store needs to find the
// subject's events. It is stored in the binary form of encode.
type record struct {
	// Sealed is the address sealed under the subject key
	// (optin.SealAddress); Wrapped the subject key wrapped under the
	// ledger key. Both are nil once erased.
	Sealed, Wrapped []byte
	// Head is the hash of the main chain's last event; Events its length.
	Head   string
	Events uint64
	// ReceiptHead is the hash of the last receipt (or of the last pruned
	// one when none is left); Receipts counts every receipt appended,
	// Pruned those pruned since, PrunedHead the last pruned one's hash.
	ReceiptHead string
	Receipts    uint64
	Pruned      uint64
	PrunedHead  string
	// Consents are optin.EncodeConsent forms by purpose.
	Consents map[string]string
	// Recorded is, by purpose, the global sequence of the event that
	// recorded the consent, where its evidence is.
	Recorded map[string]uint64
	// Suppressions are the times added in Unix nanoseconds, by reason.
	Suppressions map[optin.SuppressionReason]int64
	// KeyFrom is the global sequence of the first event sealed under the
	// subject key: the events before it were sealed under a key an
	// erasure destroyed (the subject came back since). 0: every event.
	KeyFrom uint64
	// ErasureAt is when a scheduled erasure is due, Unix nanoseconds; 0
	// for none.
	ErasureAt int64
}

// keyAt is the key that opens the subject's event at seq: nil for the
// events sealed before its key was made.
func (r *record) keyAt(key []byte, seq uint64) []byte {
	if seq < r.KeyFrom {
		return nil
	}
	return key
}

// loadRecord reads a subject's record; nil when nothing is stored.
func loadRecord(tx *bolt.Tx, sid string) (*record, error) {
	v := tx.Bucket(bucketSubjects).Get([]byte(sid))
	if v == nil {
		return nil, nil
	}
	return decodeRecord(sid, v)
}

func putRecord(tx *bolt.Tx, sid string, r *record) error {
	return tx.Bucket(bucketSubjects).Put([]byte(sid), r.encode())
}

// consent decodes the record for purpose; nil when there is none.
func (r *record) consent(a optin.Address, purpose string) (*optin.Consent, error) {
	enc, ok := r.Consents[purpose]
	if !ok {
		return nil, nil
	}
	c, err := optin.DecodeConsent(a, purpose, enc)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// open unwraps the subject key and opens the address: nil and the zero
// address for a record without them (erased).
func (r *record) open(keys *optin.Keys, sid string) ([]byte, optin.Address, error) {
	if r.Wrapped == nil {
		return nil, optin.Address{}, nil
	}
	key, err := keys.Unwrap(sid, r.Wrapped)
	if err != nil {
		return nil, optin.Address{}, err
	}
	if r.Sealed == nil {
		return key, optin.Address{}, nil
	}
	a, err := optin.OpenAddress(key, sid, r.Sealed)
	return key, a, err
}

// state turns the record into the optin.SubjectState that Apply works
// on, for the address a the change names, with the subject key.
func (r *record) state(sid string, a optin.Address, key []byte) (*optin.SubjectState, error) {
	st := optin.NewSubjectState(sid, a)
	st.Key, st.Head, st.ReceiptHead = key, r.Head, r.ReceiptHead
	for purpose := range r.Consents {
		c, err := r.consent(a, purpose)
		if err != nil {
			return nil, fmt.Errorf("%w: subject %s: %v", optin.ErrCorrupt, sid, err)
		}
		st.Consents[purpose] = *c
	}
	for reason, t := range r.Suppressions {
		st.Suppressions[reason] = time.Unix(0, t).UTC()
	}
	if r.ErasureAt != 0 {
		st.ErasureAt = time.Unix(0, r.ErasureAt).UTC()
	}
	return st, nil
}

// update copies st's current state into the record: the address
// sealed and the key wrapped when the subject has a key the record
// lacks, both dropped when it has none (erased).
func (r *record) update(keys *optin.Keyring, st *optin.SubjectState) {
	switch {
	case st.Key == nil:
		r.Wrapped, r.Sealed = nil, nil
	case r.Wrapped == nil:
		r.Wrapped = keys.Wrap(st.ID, st.Key)
		r.Sealed = optin.SealAddress(st.Key, st.ID, st.Address)
	}
	r.Head, r.ReceiptHead = st.Head, st.ReceiptHead
	r.Consents = make(map[string]string, len(st.Consents))
	for purpose, c := range st.Consents {
		r.Consents[purpose] = optin.EncodeConsent(c)
	}
	for purpose := range r.Recorded {
		if _, still := st.Consents[purpose]; !still {
			delete(r.Recorded, purpose)
		}
	}
	r.ErasureAt = 0
	if !st.ErasureAt.IsZero() {
		r.ErasureAt = st.ErasureAt.UnixNano()
	}
	r.Suppressions = make(map[optin.SuppressionReason]int64, len(st.Suppressions))
	for reason, t := range st.Suppressions {
		r.Suppressions[reason] = t.UnixNano()
	}
}
