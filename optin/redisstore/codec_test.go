package redisstore

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

func TestConsentCodecRoundTrip(t *testing.T) {
	a, _ := optin.ParseAddress("jan@example.com")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	id := optin.NewEventID(t0)
	tests := []struct {
		name  string
		c     optin.Consent
		index int64
	}{
		// A fresh grant with retention: the common case, and the one whose size matters.
		{"granted", optin.Consent{Status: optin.StatusGranted, Basis: optin.BasisConsent, Source: "form", GrantedAt: t0, UpdatedAt: t0, ExpiresAt: t0.Add(730 * 24 * time.Hour), EventID: id}, 0},
		// A withdrawal keeps the old grant time and has no expiry.
		{"withdrawn", optin.Consent{Status: optin.StatusWithdrawn, Basis: optin.BasisLegitimateInterests, Source: "unsubscribe", GrantedAt: t0.Add(-time.Hour), UpdatedAt: t0, EventID: id}, 7},
		// Unknown status, basis and a free-form event id travel as text.
		{"text", optin.Consent{Status: "odd", Basis: "other", Source: "webhook:mailchimp", UpdatedAt: t0, EventID: "not-a-canonical-id"}, -1},
		// Uppercase base32 is not canonical: kept as text so it reads back the same.
		{"upper id", optin.Consent{Status: optin.StatusPending, Basis: optin.BasisConsent, UpdatedAt: t0, EventID: strings.ToUpper(id)}, 3},
		// Zero times and an empty id.
		{"empty", optin.Consent{}, -1},
		// Granted later than updated (an import): a positive delta.
		{"granted after", optin.Consent{Status: optin.StatusGranted, Basis: optin.BasisContract, GrantedAt: t0.Add(time.Second), UpdatedAt: t0}, 1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Subject, tt.c.Purpose = a, "newsletter"
			enc := encodeConsent(tt.c, tt.index)
			got, index, err := decodeConsent(a, "newsletter", string(enc))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.c
			for _, t := range []*time.Time{&want.GrantedAt, &want.UpdatedAt, &want.ExpiresAt} {
				*t = fromUnixNano(unixNano(*t)) // UTC, nanoseconds, zero kept
			}
			if got != want || index != tt.index {
				t.Errorf("got %+v index %d\nwant %+v index %d", got, index, want, tt.index)
			}
		})
	}
}

func TestConsentCodecSize(t *testing.T) {
	t0 := time.Now()
	c := optin.Consent{Status: optin.StatusGranted, Basis: optin.BasisConsent, Source: "double_opt_in", GrantedAt: t0, UpdatedAt: t0, ExpiresAt: t0.Add(730 * 24 * time.Hour), EventID: optin.NewEventID(t0)}
	// Redis keeps a hash compact only while every value fits 64 bytes.
	if n := len(encodeConsent(c, 1000)); n > 64 {
		t.Errorf("record of %d bytes, want at most 64", n)
	}
}

func TestEventCodecRoundTrip(t *testing.T) {
	a, _ := optin.ParseAddress("jan@example.com")
	key := optin.NewKey()
	sid := optin.SubjectID(optin.NewKey(), a)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 1, time.UTC)
	for _, e := range []optin.Event{
		{ID: optin.NewEventID(t0), Time: t0, Type: optin.EventConsentGranted, Subject: a, Purpose: "newsletter", Actor: "api:admin", Details: []byte(`{"status":"granted"}`)},
		{ID: "custom id", Time: t0, Type: "custom.type", Subject: a},
	} {
		se, err := optin.Seal(key, sid, e)
		if err != nil {
			t.Fatal(err)
		}
		se.Chain(strings.Repeat("ab", 32))
		got, err := decodeEvent(sid, string(encodeEvent(&se)))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Intact(se.Prev) || got.ID != se.ID || !got.Time.Equal(se.Time) || got.Type != se.Type ||
			got.Purpose != se.Purpose || got.Actor != se.Actor || string(got.Sealed) != string(se.Sealed) || got.Hash != se.Hash {
			t.Errorf("got %+v\nwant %+v", got, se)
		}
		// Another subject's list makes it fail its hash.
		if other, _ := decodeEvent("other", string(encodeEvent(&se))); other.Intact(se.Prev) {
			t.Error("event intact under another subject id")
		}
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	t0 := time.Now()
	enc := encodeConsent(optin.Consent{Status: optin.StatusGranted, UpdatedAt: t0, EventID: optin.NewEventID(t0)}, 0)
	for _, bad := range []string{string(enc[:len(enc)-3]), string(enc) + "x", "\x01\x09"} {
		if _, _, err := decodeConsent(optin.Address{}, "p", bad); !errors.Is(err, optin.ErrCorrupt) {
			t.Errorf("%q: %v, want ErrCorrupt", bad, err)
		}
	}
	if _, err := decodeEvent("s", "\x01\x01ab"); !errors.Is(err, optin.ErrCorrupt) {
		t.Errorf("short event: %v", err)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add("\x01\x00\x00\x00\x00\x00\x00\x00\x00")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := decodeEvent("sid", s)
		if err != nil {
			return
		}
		// What decodes encodes back to something that decodes alike.
		again, err := decodeEvent("sid", string(encodeEvent(&e)))
		if err != nil || again.ComputeHash() != e.ComputeHash() {
			t.Fatalf("re-encoding changed the event: %v", err)
		}
	})
}

func FuzzDecodeConsent(f *testing.F) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Add(string(encodeConsent(optin.Consent{Status: optin.StatusGranted, Basis: optin.BasisConsent, Source: "form", GrantedAt: t0, UpdatedAt: t0, ExpiresAt: t0.Add(time.Hour), EventID: optin.NewEventID(t0)}, 3)))
	f.Add("granted|consent|form|1|1|0|id")
	f.Fuzz(func(t *testing.T, s string) {
		c, index, err := decodeConsent(optin.Address{}, "p", s)
		if err != nil {
			return
		}
		again, index2, err := decodeConsent(optin.Address{}, "p", string(encodeConsent(c, index)))
		if err != nil || !sameConsent(again, c) || index2 != index {
			t.Fatalf("re-encoding changed the record: %+v %d -> %+v %d, %v", c, index, again, index2, err)
		}
	})
}

// sameConsent compares records as stored: times by instant.
func sameConsent(a, b optin.Consent) bool {
	return a.Status == b.Status && a.Basis == b.Basis && a.Source == b.Source && a.EventID == b.EventID &&
		a.GrantedAt.Equal(b.GrantedAt) && a.UpdatedAt.Equal(b.UpdatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// The lookup builds its keys apart from keys' methods: they must agree.
func TestAppendSubjectKeys(t *testing.T) {
	k := keys{prefix: "p:"}
	const sid = "abcdefghijklmnopqrstuvwxyz"
	for suffix, want := range map[byte]string{'s': k.state(sid), 'e': k.events(sid), 'r': k.receipts(sid), 'd': k.marks(sid)} {
		var b strings.Builder
		k.appendSubject(&b, sid, suffix)
		if b.String() != want {
			t.Errorf("appendSubject %c = %q, want %q", suffix, b.String(), want)
		}
	}
	// subjectKeys: each subject's keys in turn, sliced right from the one
	// string, for subject ids of the usual length and another.
	sids := []string{sid, "short", sid}
	got := k.subjectKeys(sids, "sd")
	want := []string{k.state(sid), k.marks(sid), k.state("short"), k.marks("short"), k.state(sid), k.marks(sid)}
	if !slices.Equal(got, want) {
		t.Errorf("subjectKeys = %q, want %q", got, want)
	}
}

// markMember hashes as optin.MessageHash does: marks written before
// must still be found.
func TestMarkMember(t *testing.T) {
	for _, m := range []string{"", "mid:<a@b>", "mid:<20261201.0000abcd.1234567@mail.crm.bakkerij-ansems.example.nl>"} {
		if got, want := markMember(m), string(optin.MessageHash(m)[:8]); got != want {
			t.Errorf("markMember(%q) = %x, want %x", m, got, want)
		}
	}
	long := "mid:<20261201.0000abcd.1234567@mail.crm.bakkerij-ansems.example.nl>"
	if n := testing.AllocsPerRun(100, func() { _ = markMember(long) }); n > 1 {
		t.Errorf("markMember: %v allocations, want at most 2", n)
	}
}
