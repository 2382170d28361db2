package optin

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestKeyringTextRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	k := NewKeyring(now).Rotated(now.Add(time.Hour)).Rotated(now.Add(2 * time.Hour))
	k, err := k.Retired(2)
	if err != nil {
		t.Fatal(err)
	}
	text := k.Marshal()
	for name, form := range map[string][]byte{
		"file":        text,
		"environment": []byte(strings.ReplaceAll(string(text), "\n", ";")),
		"no comments": []byte("optinproxy-ledger-key-v1\nid " + strings.Fields(strings.Split(string(text), "\nid ")[1])[0] + "\n" +
			"gen 1 " + strings.Fields(strings.Split(string(text), "\ngen 1 ")[1])[0] + "\n" +
			"gen 3 " + strings.Fields(strings.Split(string(text), "\ngen 3 ")[1])[0] + "\n"),
	} {
		got, err := ParseKeyring(form)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.SameIdentity(k) || got.Newest() != 3 || len(got.Generations()) != 2 || got.Has(2) {
			t.Errorf("%s: generations %v, newest %d", name, got.Generations(), got.Newest())
		}
		a, _ := ParseAddress("x@example.com")
		if got.SubjectID(a) != k.SubjectID(a) || got.Check() != k.Check() {
			t.Errorf("%s: another identity after the round trip", name)
		}
		w := k.Wrap("sid", bytes.Repeat([]byte{7}, KeySize))
		if key, err := got.Unwrap("sid", w); err != nil || !bytes.Equal(key, bytes.Repeat([]byte{7}, KeySize)) {
			t.Errorf("%s: unwrap after the round trip: %v", name, err)
		}
	}
}

func TestParseKeyringRefuses(t *testing.T) {
	good := NewKeyring(time.Now()).Marshal()
	for name, text := range map[string]string{
		"empty":           "",
		"no magic":        "id AAAA\ngen 1 AAAA\n",
		"a password file": "hunter2\n",
		"no generation":   strings.Split(string(good), "\ngen ")[0],
		"short key":       "optinproxy-ledger-key-v1\nid QUJD\ngen 1 QUJD\n",
		"not base64":      strings.Replace(string(good), "\nid ", "\nid !!", 1),
		"generation zero": strings.Replace(string(good), "\ngen 1 ", "\ngen 0 ", 1),
		"unknown line":    string(good) + "owner root\n",
		"twice the same":  string(good) + "gen 1 " + strings.Fields(strings.Split(string(good), "\ngen 1 ")[1])[0] + "\n",
	} {
		if _, err := ParseKeyring([]byte(text)); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: %v, want ErrBadKey", name, err)
		}
	}
}

// TestWrap: a wrap opens only for its subject, under the generation it
// names, and not once that generation is gone; it is 61 bytes, within
// Redis's compact hash values.
func TestWrap(t *testing.T) {
	k := NewKeyring(time.Now())
	key := NewKey()
	w := k.Wrap("sid-a", key)
	if len(w) != 41 {
		t.Errorf("a wrap of %d bytes, want 41", len(w))
	}
	if g, ok := WrapGeneration(w); !ok || g != 1 {
		t.Errorf("WrapGeneration = %d %v", g, ok)
	}
	if _, err := k.Unwrap("sid-b", w); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a wrap moved to another subject: %v", err)
	}
	bad := bytes.Clone(w)
	bad[20] ^= 1
	if _, err := k.Unwrap("sid-a", bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a changed wrap: %v", err)
	}
	r := k.Rotated(time.Now())
	w2 := r.Wrap("sid-a", key)
	if g, _ := WrapGeneration(w2); g != 2 {
		t.Errorf("a wrap after rotating is under %d", g)
	}
	if _, err := k.Unwrap("sid-a", w2); !errors.Is(err, ErrKeyGeneration) {
		t.Errorf("a wrap under a generation the keyring lacks: %v", err)
	}
	retired, err := r.Retired(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := retired.Unwrap("sid-a", w); !errors.Is(err, ErrKeyGeneration) {
		t.Errorf("a wrap under a retired generation: %v", err)
	}
	if _, err := r.Retired(2); err == nil {
		t.Error("the newest generation was retired")
	}
	if w3, g := r.WrapAt(1, "sid-a", key); g != 1 {
		t.Errorf("WrapAt(1) wrapped under %d", g)
	} else if got, err := k.Unwrap("sid-a", w3); err != nil || !bytes.Equal(got, key) {
		t.Errorf("WrapAt(1) does not open with generation 1: %v", err)
	}
}

// TestSealAddress: the sealed address opens with its subject's key and
// id only, and is the address plus 12 bytes.
func TestSealAddress(t *testing.T) {
	a, _ := ParseAddress("Jan@Example.com")
	key := NewKey()
	sealed := SealAddress(key, "sid", a)
	if len(sealed) != len(a.String())+12 || bytes.Contains(sealed, []byte("jan")) {
		t.Errorf("sealed address %x", sealed)
	}
	if got, err := OpenAddress(key, "sid", sealed); err != nil || got != a {
		t.Errorf("OpenAddress = %v %v", got, err)
	}
	if _, err := OpenAddress(key, "other", sealed); !errors.Is(err, ErrCorrupt) {
		t.Errorf("opened under another subject id: %v", err)
	}
	if _, err := OpenAddress(NewKey(), "sid", sealed); !errors.Is(err, ErrCorrupt) {
		t.Errorf("opened under another key: %v", err)
	}
}

// TestSealReceipt: a receipt's details round-trip through the compact
// form; its id and time must agree; tampering fails to open.
func TestSealReceipt(t *testing.T) {
	a, _ := ParseAddress("r@example.com")
	key := NewKey()
	now := time.Date(2026, 12, 1, 10, 0, 0, 123_000_000, time.UTC)
	for _, d := range []ReceiptDetails{
		{MessageID: "<m@x>", QueueID: "q1", ConsentEvent: NewEventID(now)},
		{MessageID: "<m@x>", Stage: "rcpt", ConsentEvent: "not-an-id"},
		{MessageID: strings.Repeat("x", 300), Mode: "monitor", Uncertain: true},
	} {
		ch := Receipt{Subject: a, Purpose: "newsletter", Actor: "smtp:crm", Time: now, Relayed: true,
			Decision: Decision{Allow: d.Mode == "", Reason: ReasonConsent}, Details: d}.Change()
		s, err := SealReceipt(key, "sid", ch.Event)
		if err != nil {
			t.Fatal(err)
		}
		e, err := Open(key, s)
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Details) != string(ch.Event.Details) || !e.Time.Equal(ch.Event.Time) {
			t.Errorf("details %s, want %s", e.Details, ch.Event.Details)
		}
		s.Sealed[0] ^= 1
		if _, err := Open(key, s); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a tampered receipt opened: %v", err)
		}
		ch.Event.Time = ch.Event.Time.Add(time.Millisecond)
		if _, err := SealReceipt(key, "sid", ch.Event); !errors.Is(err, ErrBadInput) {
			t.Errorf("a receipt whose time is not its id's: %v", err)
		}
	}
}

// Keyring.SubjectID reuses its hash and buffers: its ids must stay those
// of SubjectID, call after call, for addresses of any length.
func TestKeyringSubjectIDMatches(t *testing.T) {
	id := NewKey()
	k := NewKeyringFrom(id, time.Now())
	for _, s := range []string{"a@b.example", "jan.de.vries+nieuwsbrief@bakkerij-ansems.example.nl", "x@y.example", "\"quoted local\"@example.com"} {
		a, err := ParseAddress(s)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if got, want := k.SubjectID(a), SubjectID(id, a); got != want {
				t.Errorf("SubjectID(%s) = %s, want %s", s, got, want)
			}
		}
	}
}
