package optin

import (
	"errors"
	"testing"
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
