package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"optinproxy/optin"
)

// The plaintext of a frame is a JSON array of wireChange: a form of
// optin.Change of the journal's own, so that a change of the API's JSON
// (Consent's, Evidence's) does not change what a journal written before
// reads back as. Every field of optin.Change is here but Once (every
// journaled change is replayed with it), and of its Event all but Prev,
// Hash and Erased, which the store sets (TestWireCoversChange keeps the
// list complete). Field names are short: a receipt is the common case,
// and the journal can grow large during an outage.
type wireChange struct {
	Subject   string        `json:"s"`
	Consent   *wireConsent  `json:"c,omitempty"`
	Add       string        `json:"add,omitempty"`
	Remove    string        `json:"rm,omitempty"`
	Event     wireEvent     `json:"e"`
	Delivered *wireDelivery `json:"d,omitempty"`
	Undated   bool          `json:"u,omitempty"`
	Replaces  string        `json:"r,omitempty"`
	Notice    string        `json:"n,omitempty"`
	Erasure   *wireErasure  `json:"er,omitempty"`
}

// wireErasure is optin.Erasure. The relay journals receipts only; an
// erasure is kept all the same, so that no change loses a field here.
type wireErasure struct {
	Op     uint8     `json:"op"`
	At     time.Time `json:"at,omitzero"`
	Notify bool      `json:"n,omitempty"`
	Due    bool      `json:"due,omitempty"`
}

type wireEvent struct {
	ID      string          `json:"id"`
	Time    time.Time       `json:"t"`
	Type    string          `json:"ty"`
	Subject string          `json:"s,omitempty"`
	Purpose string          `json:"p,omitempty"`
	Actor   string          `json:"a,omitempty"`
	Details json.RawMessage `json:"d,omitempty"`
}

type wireConsent struct {
	Subject   string        `json:"s,omitempty"`
	Purpose   string        `json:"p"`
	Status    string        `json:"st"`
	Basis     string        `json:"b"`
	Source    string        `json:"src"`
	Evidence  *wireEvidence `json:"ev,omitempty"`
	GrantedAt time.Time     `json:"g,omitzero"`
	UpdatedAt time.Time     `json:"up,omitzero"`
	ExpiresAt time.Time     `json:"x,omitzero"`
	EventID   string        `json:"e,omitempty"`
	Gaps      uint8         `json:"gaps,omitempty"`
	Policy    string        `json:"pv,omitempty"`
	NoticedAt time.Time     `json:"n,omitzero"`
}

type wireEvidence struct {
	Time          time.Time         `json:"t,omitzero"`
	IP            string            `json:"ip,omitempty"`
	UserAgent     string            `json:"ua,omitempty"`
	PolicyVersion string            `json:"pv,omitempty"`
	Text          string            `json:"tx,omitempty"`
	Extra         map[string]string `json:"x,omitempty"`
}

type wireDelivery struct {
	Message string    `json:"m"`
	Until   time.Time `json:"u"`
}

// encodeChanges is the plaintext of a frame.
func encodeChanges(changes []optin.Change) ([]byte, error) {
	w := make([]wireChange, len(changes))
	for i, ch := range changes {
		w[i] = toWire(ch)
	}
	return json.Marshal(w)
}

// decodeChanges reads encodeChanges's form back, every change marked
// Once. An error means the plaintext is not a journal's.
func decodeChanges(b []byte) ([]optin.Change, error) {
	var w []wireChange
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	out := make([]optin.Change, len(w))
	for i, wc := range w {
		ch, err := fromWire(wc)
		if err != nil {
			return nil, fmt.Errorf("change %d: %w", i, err)
		}
		out[i] = ch
	}
	return out, nil
}

func toWire(ch optin.Change) wireChange {
	e := ch.Event
	w := wireChange{
		Subject: ch.Subject.String(),
		Add:     string(ch.AddSuppression),
		Remove:  string(ch.RemoveSuppression),
		Event: wireEvent{ID: e.ID, Time: e.Time, Type: string(e.Type), Subject: e.Subject.String(),
			Purpose: e.Purpose, Actor: e.Actor, Details: e.Details},
		Undated:  ch.Undated,
		Replaces: ch.Replaces,
		Notice:   ch.Notice,
	}
	if c := ch.Consent; c != nil {
		w.Consent = &wireConsent{Subject: c.Subject.String(), Purpose: c.Purpose, Status: string(c.Status),
			Basis: string(c.Basis), Source: c.Source, GrantedAt: c.GrantedAt, UpdatedAt: c.UpdatedAt,
			ExpiresAt: c.ExpiresAt, EventID: c.EventID, Gaps: uint8(c.Gaps), Policy: c.PolicyVersion, NoticedAt: c.NoticedAt}
		if ev := c.Evidence; ev != nil {
			w.Consent.Evidence = &wireEvidence{Time: ev.Time, IP: ev.IP, UserAgent: ev.UserAgent,
				PolicyVersion: ev.PolicyVersion, Text: ev.Text, Extra: ev.Extra}
		}
	}
	if d := ch.Delivered; d != nil {
		w.Delivered = &wireDelivery{Message: d.Message, Until: d.Until}
	}
	if er := ch.Erasure; er != nil {
		w.Erasure = &wireErasure{Op: uint8(er.Op), At: er.At, Notify: er.Notify, Due: er.Due}
	}
	return w
}

func fromWire(w wireChange) (optin.Change, error) {
	subject, err := address(w.Subject)
	if err != nil {
		return optin.Change{}, err
	}
	if subject.IsZero() {
		return optin.Change{}, errors.New("no subject")
	}
	if w.Event.ID == "" {
		return optin.Change{}, errors.New("no event id")
	}
	ch := optin.Change{
		Subject:           subject,
		AddSuppression:    optin.SuppressionReason(w.Add),
		RemoveSuppression: optin.SuppressionReason(w.Remove),
		Event: optin.Event{ID: w.Event.ID, Time: w.Event.Time, Type: optin.EventType(w.Event.Type),
			Purpose: w.Event.Purpose, Actor: w.Event.Actor, Details: w.Event.Details},
		Undated:  w.Undated,
		Replaces: w.Replaces,
		Notice:   w.Notice,
		Once:     true,
	}
	if ch.Event.Subject, err = address(w.Event.Subject); err != nil {
		return optin.Change{}, err
	}
	if wc := w.Consent; wc != nil {
		c := &optin.Consent{Purpose: wc.Purpose, Status: optin.Status(wc.Status), Basis: optin.Basis(wc.Basis),
			Source: wc.Source, GrantedAt: wc.GrantedAt, UpdatedAt: wc.UpdatedAt, ExpiresAt: wc.ExpiresAt,
			EventID: wc.EventID, Gaps: optin.ProofGaps(wc.Gaps), PolicyVersion: wc.Policy, NoticedAt: wc.NoticedAt}
		if c.Subject, err = address(wc.Subject); err != nil {
			return optin.Change{}, err
		}
		if ev := wc.Evidence; ev != nil {
			c.Evidence = &optin.Evidence{Time: ev.Time, IP: ev.IP, UserAgent: ev.UserAgent,
				PolicyVersion: ev.PolicyVersion, Text: ev.Text, Extra: ev.Extra}
		}
		ch.Consent = c
	}
	if d := w.Delivered; d != nil {
		ch.Delivered = &optin.Delivery{Message: d.Message, Until: d.Until}
	}
	if er := w.Erasure; er != nil {
		ch.Erasure = &optin.Erasure{Op: optin.ErasureOp(er.Op), At: er.At, Notify: er.Notify, Due: er.Due}
	}
	return ch, nil
}

// address parses a stored address; "" is the zero Address.
func address(s string) (optin.Address, error) {
	if s == "" {
		return optin.Address{}, nil
	}
	return optin.ParseAddress(s)
}
