package optin

import (
	"encoding/json"
	"fmt"
	"time"
)

// SubjectState is everything current about one subject, as a store keeps
// it: the address, the subject's key for its events, the heads of its two
// chains, its consent records and its suppressions. Both stores load it,
// call Apply, and write it back with the sealed events in one atomic step,
// so the rules live here once.
//
// A subject has two hash chains: its main chain (consent, suppression and
// subject events), kept as long as the subject, and its receipt chain
// (message.relayed and message.blocked), whose oldest stretch is pruned
// after policy.receipt_retention. Receipts are the bulk of the log; apart,
// they can go without touching the evidence of consent.
type SubjectState struct {
	ID      string
	Address Address
	// Key encrypts the subject's events; erasure destroys it.
	Key []byte
	// Head is the hash of the last event of the main chain, "" before the
	// first.
	Head string
	// ReceiptHead is the hash of the last receipt, or of the last one
	// pruned when none is left; "" before the first.
	ReceiptHead  string
	Consents     map[string]Consent
	Suppressions map[SuppressionReason]time.Time
	// ErasureAt is when a scheduled erasure is due; zero when none is.
	ErasureAt time.Time
}

// NewSubjectState is the state of a subject nothing is stored about.
func NewSubjectState(id string, a Address) *SubjectState {
	return &SubjectState{ID: id, Address: a, Consents: map[string]Consent{}, Suppressions: map[SuppressionReason]time.Time{}}
}

// Empty reports whether nothing is stored about the subject (no events).
func (st *SubjectState) Empty() bool { return st.Head == "" && st.ReceiptHead == "" }

// Erased reports whether the state is what an erasure left: chains
// without a key to read them.
func (st *SubjectState) Erased() bool { return st.Key == nil && !st.Empty() }

// Change is one atomic change to one subject: an optional new consent
// record, an optional suppression added or removed, and the event that
// records it. A change with only an event (a message receipt) appends the
// event. A change that carries a consent record is ignored as a whole when
// that record is not newer than the stored one, its suppression included:
// a caller that needs the suppression regardless (an unsubscribe that also
// blocks all marketing) sends it as a second change of the same batch, with
// its own event.
type Change struct {
	Subject Address
	// Consent replaces the stored record for its purpose, unless the
	// stored one is as new or newer (by UpdatedAt): then the change is
	// ignored, so a late, older webhook cannot undo a newer withdrawal. At
	// the same time, a withdrawal replaces a grant (see newer).
	Consent           *Consent
	AddSuppression    SuppressionReason
	RemoveSuppression SuppressionReason
	// Event is what the log records. Apply sets its ID (when empty) and
	// Subject; the store sets Prev and Hash.
	Event Event
	// Delivered also records a delivered copy (see Delivery), in the
	// same write as the event, when the change is applied; the relay sets
	// it on message.relayed receipts.
	Delivered *Delivery
	// Replaces, when set, is the EventID of the stored record that the
	// change was made from (a sweep read it and expires it): the change
	// is ignored unless that record is still the one stored for
	// Consent.Purpose, so that a renewal written in between stands.
	Replaces string
	// Notice, when set, is the EventID of the stored record whose coming
	// expiry Event (a consent.expiring of Event.Purpose) announces;
	// Consent is nil. The record keeps its state and its event (its
	// evidence) and gets NoticedAt, the event's time. The change is
	// ignored unless that record is still the one stored and its expiry
	// was not announced yet: a renewal in between, or a second sweep,
	// records nothing.
	Notice string
	// Undated marks a consent change whose time is unknown (an import row
	// without granted_at): it is applied only when no record for its
	// purpose is stored, since it cannot be ordered against one.
	Undated bool
	// Once marks a change that may have been applied already (a journal
	// replays a write whose outcome it did not learn): stores skip it
	// when the subject's chain holds its Event.ID, which must be set.
	Once bool
	// Erasure, when set, makes the change an erasure, or schedules or
	// cancels one (Ledger.Erase); Consent and the suppressions are then
	// not used.
	Erasure *Erasure
	// receipt is the details of a receipt as Receipt.Change made them,
	// so that sealing need not parse them back from Event.Details.
	receipt *ReceiptDetails
}

// Result tells what became of one Change.
type Result struct {
	// Applied is false when the change was ignored: older than the
	// stored record, or a suppression already there or not there.
	Applied bool
	// Event is the recorded event (with ID, Prev and Hash) when applied.
	Event Event
	// Consent is the record stored for the change's purpose afterwards.
	Consent *Consent
	// Refused, when not nil, is why the rules refused the change (an
	// error wrapping ErrErased): nothing was written for it, and the
	// other changes of the batch went on. Ledger.Grant returns it as its
	// error.
	Refused error
	// Erased tells whether the subject is erased after the change, and
	// ErasureAt when a scheduled erasure is due (zero for none).
	Erased    bool
	ErasureAt time.Time
}

// Apply changes st by ch and returns the sealed event to append, or nil
// when the change is ignored. now is used for suppression times. A
// subject without a key gets one (its first event).
//
// Erasure adds three rules. A grant or pending record for a
// subject that holds the erased suppression is refused: the error wraps
// ErrErased, and a store puts it in Result.Refused and goes on with the
// batch. What an erasure left (Erased: chains, no key) takes only
// receipts, sealed under a key made for them and dropped at once (the
// relay's block of an erased address is recorded without storing the
// address again), and the removal of the erased suppression, which makes
// a fresh key (the person came back); every other change is ignored.
// And Change.Erasure is applied by applyErasure.
func (st *SubjectState) Apply(ch Change, now time.Time) (*SealedEvent, Result, error) {
	sealed, res, err := st.apply(ch, now)
	res.Erased, res.ErasureAt = st.Erased(), st.ErasureAt
	return sealed, res, err
}

func (st *SubjectState) apply(ch Change, now time.Time) (*SealedEvent, Result, error) {
	var res Result
	if ch.Erasure != nil {
		return st.applyErasure(ch, now)
	}
	if ch.Notice != "" {
		old, had := st.Consents[ch.Event.Purpose]
		if !had || old.EventID != ch.Notice || !old.NoticedAt.IsZero() {
			if had {
				res.Consent = &old
			}
			return nil, res, nil // renewed, changed or announced already
		}
	} else if c := ch.Consent; c != nil {
		if _, erased := st.Suppressions[SuppressErased]; erased && (c.Status == StatusGranted || c.Status == StatusPending) {
			return nil, res, fmt.Errorf("%w: %s for %s", ErrErased, c.Status, c.Purpose)
		}
		old, had := st.Consents[c.Purpose]
		if ch.Replaces != "" && (!had || old.EventID != ch.Replaces) {
			if had {
				res.Consent = &old
			}
			return nil, res, nil // the record it was made from is gone
		}
		if had && (ch.Undated || !newer(c, &old)) {
			res.Consent = &old
			return nil, res, nil // older, undated or a repeat: the stored one stands
		}
	} else if !st.suppressionChanges(ch) {
		return nil, res, nil // adding what is there, removing what is not
	}
	remains := st.Erased()
	if remains && !ch.Event.Type.IsReceipt() && ch.RemoveSuppression != SuppressErased {
		return nil, res, nil // erased: nothing more is recorded but receipts and the return
	}

	e := st.event(ch.Event, now)
	key := st.Key
	if key == nil {
		key = NewKey()
		if !remains || !e.Type.IsReceipt() {
			st.Key = key
		}
	}
	if e.Type.IsReceipt() {
		return st.applyReceipt(key, e, ch.receipt)
	}
	if c := ch.Consent; c != nil {
		stored := *c
		stored.Subject = st.Address
		stored.Evidence = nil // kept in the event
		stored.EventID = e.ID
		if old, had := st.Consents[c.Purpose]; had && stored.GrantedAt.IsZero() {
			// A withdrawal keeps when it had been granted: the record
			// then tells both.
			stored.GrantedAt = old.GrantedAt
		}
		st.Consents[c.Purpose] = stored
		res.Consent = &stored
	}
	if ch.Notice != "" {
		noticed := st.Consents[e.Purpose]
		noticed.NoticedAt = e.Time
		st.Consents[e.Purpose] = noticed
		res.Consent = &noticed
	}
	if r := ch.AddSuppression; r != "" {
		if _, had := st.Suppressions[r]; !had {
			st.Suppressions[r] = e.Time
		}
	}
	if r := ch.RemoveSuppression; r != "" {
		delete(st.Suppressions, r)
	}
	sealed, applied, err := st.seal(key, e)
	applied.Consent = res.Consent
	return sealed, applied, err
}

// event fills in what a change's event lacks: its time (now), its id
// and its subject.
func (st *SubjectState) event(e Event, now time.Time) Event {
	if e.Time.IsZero() {
		e.Time = now
	}
	if e.Type.IsReceipt() {
		// A receipt keeps its time in its id, to the millisecond.
		e.Time = e.Time.UTC().Truncate(time.Millisecond)
	}
	if e.ID == "" {
		e.ID = NewEventID(e.Time) // after the time, so ids sort by it
	}
	e.Subject = st.Address
	return e
}

// seal seals e under key and appends it to the main chain.
func (st *SubjectState) seal(key []byte, e Event) (*SealedEvent, Result, error) {
	sealed, err := Seal(key, st.ID, e)
	if err != nil {
		return nil, Result{}, err
	}
	sealed.Chain(st.Head)
	st.Head = sealed.Hash
	e.Prev, e.Hash = sealed.Prev, sealed.Hash
	return &sealed, Result{Applied: true, Event: e}, nil
}

// newer reports whether the record c replaces old: it is later, or as
// late and withdraws what old granted (or left pending). Senders that
// date changes to the second (a CRM's webhook-timestamp) can send a grant
// and its withdrawal within one; the subject's objection then wins, while
// a repeat of either changes nothing.
func newer(c, old *Consent) bool {
	if c.UpdatedAt.After(old.UpdatedAt) {
		return true
	}
	return c.UpdatedAt.Equal(old.UpdatedAt) && c.Status == StatusWithdrawn &&
		(old.Status == StatusGranted || old.Status == StatusPending)
}

// applyReceipt seals a receipt under key (with its details d, or those
// of e.Details when nil) and appends it to the receipt chain.
func (st *SubjectState) applyReceipt(key []byte, e Event, d *ReceiptDetails) (*SealedEvent, Result, error) {
	sealed, err := sealReceipt(key, st.ID, e, d)
	if err != nil {
		return nil, Result{}, err
	}
	sealed.Chain(st.ReceiptHead)
	st.ReceiptHead = sealed.Hash
	e.Prev, e.Hash = sealed.Prev, sealed.Hash
	return &sealed, Result{Applied: true, Event: e}, nil
}

// suppressionChanges reports whether a change without a consent record
// changes anything: an event-only change always does.
func (st *SubjectState) suppressionChanges(ch Change) bool {
	if ch.AddSuppression == "" && ch.RemoveSuppression == "" {
		return true
	}
	_, has := st.Suppressions[ch.AddSuppression]
	_, hasRemoved := st.Suppressions[ch.RemoveSuppression]
	return (ch.AddSuppression != "" && !has) || (ch.RemoveSuppression != "" && hasRemoved)
}

// ConsentDetails is the details object of a consent event.
type ConsentDetails struct {
	Status    Status    `json:"status"`
	Basis     Basis     `json:"basis"`
	Source    string    `json:"source"`
	Evidence  *Evidence `json:"evidence,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Import names the file an imported change came from.
	Import *ImportSource `json:"import,omitempty"`
	// Reason says why a record expired (ExpiredRetention or
	// ExpiredUnconfirmed); "" for every other change.
	Reason string `json:"reason,omitempty"`
}

// Marshal returns the details as JSON for Event.Details.
func (d ConsentDetails) Marshal() json.RawMessage {
	b, _ := json.Marshal(d)
	return b
}

// EvidenceOf reads the evidence back out of a consent event's details.
func EvidenceOf(e Event) *Evidence {
	var d ConsentDetails
	if len(e.Details) == 0 || json.Unmarshal(e.Details, &d) != nil {
		return nil
	}
	return d.Evidence
}
