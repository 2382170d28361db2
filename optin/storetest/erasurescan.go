package storetest

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

// addressForms are the ways an address could show in storage: plain,
// lowercased, base64 (standard and URL alphabets, with and without
// padding) and hex.
func addressForms(s string) map[string]string {
	b := []byte(s)
	return map[string]string{
		"plain":            s,
		"lowercase":        strings.ToLower(s),
		"base64":           base64.StdEncoding.EncodeToString(b),
		"base64 unpadded":  base64.RawStdEncoding.EncodeToString(b),
		"base64url":        base64.URLEncoding.EncodeToString(b),
		"base64url bare":   base64.RawURLEncoding.EncodeToString(b),
		"hex":              hex.EncodeToString(b),
		"hex (upper case)": strings.ToUpper(hex.EncodeToString(b)),
	}
}

// findForms returns the forms of s that raw holds.
func findForms(raw []byte, s string) []string {
	var found []string
	for form, v := range addressForms(s) {
		if bytes.Contains(raw, []byte(v)) {
			found = append(found, form)
		}
	}
	return found
}

// testErasureScan: after erasures with and without a notice, nothing the
// store keeps (every key of every type on Redis, the raw bytes of the
// embedded file) holds the erased addresses in any form, while the
// subject ids (the keyed hashes that block them) and the other
// subjects' data are there.
func testErasureScan(t *testing.T, h Harness) {
	if h.Raw == nil {
		t.Skip("the harness cannot read the raw storage")
	}
	f := openFixture(t, h)
	erased := []string{"Anna.de.Vries@Voorbeeld.NL", "piet.jansen+nieuws@example.com"}
	keep := f.addr("blijft@example.com")
	until := f.clock.Now().Add(window)
	for i, in := range erased {
		a := f.addr(in)
		f.applied(f.grant(a, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.99", Extra: map[string]string{"email": in}}}))
		f.applied(f.relayed(a, "mid:<scan@crm.example>", until))
		f.applied(f.suppress(a, optin.SuppressComplaint))
		if _, err := f.ledger.Erase(f.ctx, a, optin.ErasureRequest{At: f.base.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		f.erase(a, i == 0)
		f.applied(f.receipt(a, optin.EventMessageBlocked, "<after@crm.example>"))
	}
	f.applied(f.grant(keep, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.100"}}))
	f.applied(f.relayed(keep, "mid:<scan@crm.example>", until))

	raw := h.Raw(t, f.store)
	// The scan sees the data: the subject ids are there, erased or not.
	for _, a := range []optin.Address{f.addr(erased[0]), f.addr(erased[1]), keep} {
		if sid := f.keys.Get().SubjectID(a); !bytes.Contains(raw, []byte(sid)) && !bytes.Contains(raw, sidBytes(t, sid)) {
			t.Errorf("the raw storage (%d bytes) lacks the subject id of %s: the scan does not see it", len(raw), a)
		}
	}
	// The scan finds an address in every form when it is there.
	probe := "probe.address@example.org"
	for form, v := range addressForms(probe) {
		if found := findForms(append(bytes.Clone(raw), v...), probe); len(found) == 0 {
			t.Errorf("the scan misses the %s form", form)
		}
	}
	for _, in := range erased {
		a := f.addr(in)
		for _, s := range []string{in, a.String(), a.Local()} {
			if found := findForms(raw, s); len(found) > 0 {
				t.Errorf("after the erasure the storage holds %q in the forms %v", s, found)
			}
		}
		f.wantErased(a, "")
	}
	if v := f.subject(keep, 10); len(v.Consents) != 1 || v.Consents[0].Evidence == nil || v.Consents[0].Evidence.IP != "192.0.2.100" {
		t.Errorf("the other subject after the erasures: %+v", v.Consents)
	}
	f.wantDelivered("the other subject's mark", "mid:<scan@crm.example>", []optin.Address{keep}, true)
	if r := f.verify(); len(r.Broken) != 0 || r.Subjects != 3 {
		t.Errorf("Verify after the erasures: %+v", r)
	}
}

// base32Lower is the form of subject ids.
var base32Lower = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// sidBytes is a subject id's 16 raw bytes (the form Redis packs into
// its feed and outbox).
func sidBytes(t *testing.T, sid string) []byte {
	raw, err := base32Lower.DecodeString(sid)
	if err != nil {
		t.Fatalf("subject id %q: %v", sid, err)
	}
	return raw
}

// testErasureBackup: what erasure means for a copy of the store taken
// before it. Readability in a copy depends on one thing: whether the
// generation its subject keys are wrapped under is still in the key file.
//
//   - The copy taken before the erasure (generation 1) still shows the
//     erased subject with the key file of its time, and after a rotation
//     too, as long as generation 1 is kept: rotating alone is not enough.
//   - Once generation 1 is retired, that copy cannot read the erased
//     subject, nor any other subject in it (each is wrapped under 1
//     there): a backup under a retired generation is gone as a whole,
//     which is why it is retired only once such backups have expired.
//   - A copy taken after the rotation reads the subject that was
//     rotated before it, with the retired key file, and shows the erased
//     one as erased: its key was destroyed before the copy.
//   - The store itself reads on.
func testErasureBackup(t *testing.T, h Harness) {
	if h.Snapshot == nil || h.Reopen == nil {
		t.Skip("the harness cannot copy or reopen a store")
	}
	f := openFixture(t, h)
	gone, kept := f.addr("forget.me@example.com"), f.addr("keep.me@example.com")
	for _, a := range []optin.Address{gone, kept} {
		f.applied(f.grant(a, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.80", Text: "Yes"}}))
	}
	before := h.Snapshot(t, f.store)
	f.erase(gone, false)

	old := f.keys.Get()
	rotated := old.Rotated(f.base)
	if err := f.keys.Set(rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Rotate(f.ctx, nil); err != nil {
		t.Fatal(err)
	}
	after := h.Snapshot(t, f.store)
	retired, err := rotated.Retired(old.Newest())
	if err != nil {
		t.Fatal(err)
	}

	readable := func(what string, s optin.Store, a optin.Address) {
		t.Helper()
		v, err := s.Subject(f.ctx, a, 10)
		if err != nil || v.Erased || len(v.Consents) != 1 || v.Consents[0].Evidence == nil || v.Consents[0].Evidence.IP != "192.0.2.80" {
			t.Errorf("%s: %s: %+v, %v; want it readable", what, a, v, err)
		}
	}
	unreadable := func(what string, s optin.Store, a optin.Address) {
		t.Helper()
		v, err := s.Subject(f.ctx, a, 10)
		if !errors.Is(err, optin.ErrKeyGeneration) {
			t.Errorf("%s: %s: %+v, %v; want an error wrapping ErrKeyGeneration", what, a, v, err)
		}
		if _, err := s.Events(f.ctx, optin.EventQuery{Subject: a}); !errors.Is(err, optin.ErrKeyGeneration) {
			t.Errorf("%s: the events of %s: %v; want an error wrapping ErrKeyGeneration", what, a, err)
		}
	}
	open := func(what string, copy func(*optin.Keys) (optin.Store, error), k *optin.Keyring) optin.Store {
		t.Helper()
		s, err := copy(optin.StaticKeys(k))
		if err != nil {
			t.Fatalf("opening %s: %v", what, err)
		}
		return s
	}

	s := open("the copy before the erasure, with the key file of its time", before, old)
	readable("the copy before the erasure", s, gone)
	s.Close()
	s = open("the copy before the erasure, rotated but not retired", before, rotated)
	readable("the copy before the erasure, generation 1 kept", s, gone)
	s.Close()
	s = open("the copy before the erasure, generation 1 retired", before, retired)
	unreadable("the copy before the erasure, generation 1 retired", s, gone)
	unreadable("the copy before the erasure, generation 1 retired", s, kept)
	s.Close()
	s = open("the copy after the rotation, generation 1 retired", after, retired)
	readable("the copy after the rotation", s, kept)
	if v, err := s.Subject(f.ctx, gone, 10); err != nil || !v.Erased || len(v.Consents) != 0 {
		t.Errorf("the copy after the rotation: %s: %+v, %v; want it erased", gone, v, err)
	}
	s.Close()

	f.keys = optin.StaticKeys(retired)
	st, err := h.Reopen(t, f.store, f.clock.Now, f.keys)
	if err != nil {
		t.Fatal(err)
	}
	f.use(st)
	readable("the store, generation 1 retired", f.store, kept)
	f.wantErased(gone, "")
	if r := f.verify(); len(r.Broken) != 0 {
		t.Errorf("Verify of the store after retiring: %+v", r.Broken)
	}
}
