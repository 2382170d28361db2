package filestore

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// record is a subject as the subjects bucket keeps it: optin.SubjectState
// plus what the store needs to find the subject's events. It is stored in
// the binary form of encode.
type record struct {
	// Address is the normalized address; "" once erased.
	Address string
	// Key is the subject's event key; nil once erased.
	Key  []byte
	Head string
	// Events is the length of the subject's chain.
	Events uint64
	// Consents are optin.EncodeConsent forms by purpose.
	Consents map[string]string
	// Recorded is, by purpose, the global sequence of the event that
	// recorded the consent, where its evidence is.
	Recorded map[string]uint64
	// Suppressions are the times added in Unix nanoseconds, by reason.
	Suppressions map[optin.SuppressionReason]int64
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

// state turns the record into the optin.SubjectState that Apply works
// on. a is the address the change names, used when the record has none.
func (r *record) state(sid string, a optin.Address) (*optin.SubjectState, error) {
	if r.Address != "" && r.Address != a.String() {
		a2, err := optin.ParseAddress(r.Address)
		if err != nil {
			return nil, fmt.Errorf("%w: subject %s: %v", optin.ErrCorrupt, sid, err)
		}
		a = a2
	}
	st := optin.NewSubjectState(sid, a)
	st.Key, st.Head = r.Key, r.Head
	for purpose := range r.Consents {
		c, err := r.consent(a, purpose)
		if err != nil {
			return nil, err
		}
		st.Consents[purpose] = *c
	}
	for reason, t := range r.Suppressions {
		st.Suppressions[reason] = time.Unix(0, t).UTC()
	}
	return st, nil
}

// update copies st's current state into the record.
func (r *record) update(st *optin.SubjectState) {
	r.Address = st.Address.String()
	r.Key, r.Head = st.Key, st.Head
	r.Consents = make(map[string]string, len(st.Consents))
	for purpose, c := range st.Consents {
		r.Consents[purpose] = optin.EncodeConsent(c)
	}
	r.Suppressions = make(map[optin.SuppressionReason]int64, len(st.Suppressions))
	for reason, t := range st.Suppressions {
		r.Suppressions[reason] = t.UnixNano()
	}
}
