package optin

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParseAddress checks that ParseAddress never panics, that every error
// wraps ErrBadAddress, and that normalization is idempotent: the String of a
// parsed Address parses to the same Address.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"jan@example.com",
		"  <Jan+News@EXAMPLE.com> ",
		`"John \"JD\" Doe"@example.com`,
		"info@xn--bcher-kva.example",
		"ΔΗΜΗΤΡΗΣ@παράδειγμα.δοκιμή",
		"jan@[IPv6:2001:db8::1]",
		"jan@[192.0.2.1]",
		"a@b\u3002c",
		"ǅ@example.com",
		"",
		"@",
		`"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("ParseAddress(%q): %v does not wrap ErrBadAddress", s, err)
			}
			return
		}
		if a.IsZero() {
			t.Fatalf("ParseAddress(%q) returned the zero Address without an error", s)
		}
		again, err := ParseAddress(a.String())
		if err != nil {
			t.Fatalf("ParseAddress(%q) = %q, which does not parse: %v", s, a, err)
		}
		if again != a {
			t.Fatalf("ParseAddress(%q) = %q, but that parses to %q", s, a, again)
		}
		if len(a.Local()) > maxLocalOctets || len(a.String()) > maxAddressOctets {
			t.Fatalf("ParseAddress(%q) = %q, over the length limits", s, a)
		}
		if a.ASCIIDomain() == "" {
			t.Fatalf("ParseAddress(%q) = %q has no ASCII domain", s, a)
		}
	})
}

// FuzzParseKeyring: a key file or variable of any content parses or is
// refused with ErrBadKey; what parses marshals to text that parses to the
// same keyring.
func FuzzParseKeyring(f *testing.F) {
	f.Add(NewKeyring(time.Unix(0, 0)).Rotated(time.Unix(0, 0)).Marshal())
	f.Add([]byte("optinproxy-ledger-key-v1;id AAAA;gen 1 AAAA"))
	f.Fuzz(func(t *testing.T, text []byte) {
		k, err := ParseKeyring(text)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("error without ErrBadKey: %v", err)
			}
			return
		}
		again, err := ParseKeyring(k.Marshal())
		if err != nil || !again.SameIdentity(k) || again.Newest() != k.Newest() || len(again.Generations()) != len(k.Generations()) {
			t.Fatalf("marshalled keyring does not parse back: %v", err)
		}
	})
}

// FuzzReceiptDetails: the compact form of receipt details decodes or
// fails cleanly, and what decodes encodes back to the same bytes.
func FuzzReceiptDetails(f *testing.F) {
	f.Add(ReceiptDetails{MessageID: "<m@x>", QueueID: "q", Decision: "allow", Reason: ReasonConsent,
		ConsentEvent: NewEventID(time.Unix(0, 0))}.appendBinary(nil))
	f.Add(ReceiptDetails{Reason: "custom:reason", Stage: "rcpt", Uncertain: true}.appendBinary(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeReceiptDetails(b)
		if err != nil {
			return
		}
		if got := d.appendBinary(nil); !bytes.Equal(got, b) && !canonicalLater(b, got) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, d, got)
		}
	})
}

// canonicalLater allows the encodings that decode alike but are not the
// encoder's own: a known reason written as text, a canonical event id
// written as text, unknown flag bits.
func canonicalLater(in, out []byte) bool {
	a, err1 := decodeReceiptDetails(in)
	b, err2 := decodeReceiptDetails(out)
	return err1 == nil && err2 == nil && a == b
}
