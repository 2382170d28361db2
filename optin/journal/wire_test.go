package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"optinproxy/optin"
)

// TestWireCoversChange fails when optin.Change (or a type in it) gains
// or loses a field: wire.go must then learn it, or a journaled change
// would lose it on the way to the store.
func TestWireCoversChange(t *testing.T) {
	for typ, want := range map[reflect.Type]int{
		reflect.TypeFor[optin.Change]():   12, // all but Once, and the receipt details Event.Details holds too, in wireChange
		reflect.TypeFor[optin.Event]():    10, // all but Prev, Hash and Erased in wireEvent
		reflect.TypeFor[optin.Consent]():  13, // all in wireConsent
		reflect.TypeFor[optin.Evidence](): 6,  // all in wireEvidence
		reflect.TypeFor[optin.Delivery](): 2,  // all in wireDelivery
		reflect.TypeFor[optin.Erasure]():  4,  // all in wireErasure
	} {
		if got := typ.NumField(); got != want {
			t.Errorf("%v has %d fields, wire.go knows %d: update wire.go and this test", typ, got, want)
		}
	}
}

// fullChange has every field wire.go keeps set.
func fullChange(t testing.TB) optin.Change {
	a := addr(t, "Jan+News@Example.com")
	at := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.UTC)
	return optin.Change{
		Subject: a,
		Consent: &optin.Consent{Subject: a, Purpose: "newsletter", Status: optin.StatusGranted, Basis: optin.BasisConsent,
			Source: optin.SourceForm, GrantedAt: at, UpdatedAt: at, ExpiresAt: at.Add(time.Hour), EventID: "e1",
			Gaps: optin.GapPolicyVersion | optin.GapGrantTime, PolicyVersion: "2026-01", NoticedAt: at.Add(time.Minute),
			Evidence: &optin.Evidence{Time: at, IP: "192.0.2.1", UserAgent: "ua", PolicyVersion: "2026-01", Text: "yes", Extra: map[string]string{"campaign": "x"}}},
		AddSuppression:    optin.SuppressManual,
		RemoveSuppression: optin.SuppressComplaint,
		Event: optin.Event{ID: optin.NewEventID(at), Time: at, Type: optin.EventConsentGranted, Subject: a, Purpose: "newsletter",
			Actor: "api:crm", Details: json.RawMessage(`{"status":"granted"}`)},
		Delivered: &optin.Delivery{Message: "mid:<m@x>", Until: at.Add(24 * time.Hour)},
		Undated:   true,
		Replaces:  "e0",
		Notice:    "e1",
		Erasure:   &optin.Erasure{Op: optin.EraseSchedule, At: at.Add(48 * time.Hour), Notify: true, Due: true},
	}
}

// TestWireRoundTrip: a change comes back from the journal as it went in,
// marked Once.
func TestWireRoundTrip(t *testing.T) {
	bare := receipt(addr(t, "bare@example.com"), "<bare@x>", time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC))
	bare.Event.Subject = optin.Address{}
	bare.Delivered = nil
	in := []optin.Change{fullChange(t), bare}
	b, err := encodeChanges(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeChanges(b)
	if err != nil {
		t.Fatal(err)
	}
	// What the wire keeps comes back alike (the receipt's details from
	// its Event.Details), and every change is marked Once.
	again, err := encodeChanges(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, again) || len(out) != len(in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
	for i := range out {
		if !out[i].Once {
			t.Errorf("change %d came back without Once", i)
		}
	}
}

// TestFrame: a frame opens under its key only, and every cut or changed
// byte is found.
func TestFrame(t *testing.T) {
	aead, _ := newAEAD(testKeys.Get().Derive("journal"))
	changes := []optin.Change{fullChange(t), receipt(addr(t, "f@example.com"), "<f@x>", time.Now())}
	frame, err := sealFrame(aead, changes)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := decodeFrame(aead, append(bytes.Clone(frame), "next"...))
	if err != nil || n != len(frame) || len(got) != 2 || got[1].Event.ID != changes[1].Event.ID {
		t.Fatalf("decodeFrame: %d changes, %d bytes, %v; want 2, %d", len(got), n, err, len(frame))
	}
	for cut := range len(frame) {
		if _, _, err := decodeFrame(aead, frame[:cut]); !errors.Is(err, errShort) {
			t.Fatalf("cut to %d bytes: %v, want errShort", cut, err)
		}
	}
	for i := range frame {
		bad := bytes.Clone(frame)
		bad[i] ^= 1
		_, _, err := decodeFrame(aead, bad)
		want := errSeal
		if i < headerSize {
			want = errHeader
		}
		if !errors.Is(err, want) {
			t.Fatalf("byte %d changed: %v, want %v", i, err, want)
		}
	}
	other, _ := newAEAD(optin.NewKeyring(time.Now()).Derive("journal"))
	if _, _, err := decodeFrame(other, frame); !errors.Is(err, errSeal) {
		t.Errorf("under another key: %v, want errSeal", err)
	}
}
