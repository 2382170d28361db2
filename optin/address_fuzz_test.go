package optin

import (
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// FuzzAddressRelayed checks that the address relayed is the address
// decided. The proxy relays a recipient's local part as the client wrote it
// (only the domain may change, to its ASCII form), and decides on the
// parsed Address. So: the normalized form parses to the same Address, so
// does the relayed form, and a role address is one only when the local part
// as written is that role's name up to ASCII case: no Unicode folding may
// make another mailbox a role address. Local parts without the characters
// whose handling changed keep the normalization they always had (lowercase,
// then NFC), so stored subjects keep their ids.
func FuzzAddressRelayed(f *testing.F) {
	for _, s := range []string{
		"info@example.com",
		"\u0130nfo@example.com",
		"I\u0307NFO@example.com",
		"\u212Aantoor@example.com",
		"<Info+crm@xn--bcher-kva.example>",
		`"INFO"@example.com`,
		`"info x"@example.com`,
		"no_reply@BÜCHER.example",
		"j\u00fcrgen@example.com",
		"adm\u0130n@example.com",
		"I\u0323\u0307@example.com",
	} {
		f.Add(s)
	}
	roles, err := NewRoleAddresses(nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	builtin := map[string]bool{}
	for _, r := range builtinRoles {
		builtin[separatorsAlike(r)] = true
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if again, err := ParseAddress(a.String()); err != nil || again != a {
			t.Fatalf("%q: normalized %q parses to %q, %v", s, a, again, err)
		}
		text, quoted, domain := writtenParts(t, s)
		local := text
		if quoted {
			local = quote(text)
		}
		relayed := local + "@" + domain
		if !a.NeedsSMTPUTF8() {
			relayed = local + "@" + a.ASCIIDomain()
		}
		b, err := ParseAddress(relayed)
		if err != nil || b != a {
			t.Fatalf("%q: relayed as %q, which parses to %q (%v), decided %q", s, relayed, b, err, a)
		}
		if got, want := roles.Is(a), writtenRole(builtin, text, quoted); got != want {
			t.Fatalf("%q: role address %v, but its local part as written is one: %v", s, got, want)
		}
		if !a.NeedsSMTPUTF8() && hasNonASCIIRune(text) {
			t.Fatalf("%q: non-ASCII local part %q normalized to ASCII %q", s, text, a.Local())
		}
		if !changedHandling(text) {
			want := norm.NFC.String(strings.ToLower(text))
			if got := unquoted(a.Local()); got != want {
				t.Fatalf("%q: local part %q, before this normalization %q", s, got, want)
			}
		}
	})
}

// writtenParts returns the local part of s as written, without its quotes,
// and the domain as written. s parses.
func writtenParts(t *testing.T, s string) (text string, quoted bool, domain string) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") {
		s = s[1 : len(s)-1]
	}
	local, domain, err := splitAddress(s)
	if err != nil {
		t.Fatalf("%q parses, but does not split: %v", s, err)
	}
	if local[0] == '"' {
		return unquote(local), true, domain
	}
	return local, false, domain
}

// writtenRole is the role check on the local part as written: a built-in
// role's name up to ASCII case and the separators, and never a quoted
// local part that needs its quotes.
func writtenRole(builtin map[string]bool, text string, quoted bool) bool {
	if quoted && dotAtomError(text) != "" {
		return false
	}
	base, _, _ := strings.Cut(text, "+")
	if base == "" || hasNonASCIIRune(base) {
		return false
	}
	return builtin[separatorsAlike(strings.ToLower(base))]
}

func separatorsAlike(s string) string { return strings.NewReplacer("_", "-", ".", "-").Replace(s) }

// changedHandling reports whether text holds what normalizeLocal treats
// differently from plain lowercase-then-NFC: a non-ASCII character whose
// lowercase or NFC is ASCII, or I + U+0307 (which NFC makes İ).
func changedHandling(text string) bool {
	for _, r := range text {
		if r >= 0x80 && (unicode.ToLower(r) < 0x80 || !hasNonASCIIRune(norm.NFC.String(string(r)))) {
			return true
		}
	}
	return strings.ContainsRune(norm.NFC.String(text), '\u0130')
}

func unquoted(local string) string {
	if strings.HasPrefix(local, `"`) {
		return unquote(local)
	}
	return local
}

func hasNonASCIIRune(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 }) >= 0
}
