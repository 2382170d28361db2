package optin

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

func TestParseAddressNormalizes(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		// Plain address, already normal.
		{"jan@example.com", "jan@example.com"},
		// Local part and domain are lowercased.
		{"Jan@EXAMPLE.com", "jan@example.com"},
		// Surrounding whitespace and an SMTP path's brackets go.
		{"  <jan@Example.COM> ", "jan@example.com"},
		// Tabs and newlines count as surrounding whitespace too.
		{"\tjan@example.com\r\n", "jan@example.com"},
		// Plus-tags are part of the subject: kept, lowercased.
		{"Jan+News@example.com", "jan+news@example.com"},
		// Every atext symbol of RFC 5322 may stand in a dot-atom.
		{"a!#$%&'*+-/=?^_`{|}~z@example.com", "a!#$%&'*+-/=?^_`{|}~z@example.com"},
		// Inner dots are fine.
		{"j.a.n@example.com", "j.a.n@example.com"},
		// A punycode domain is decoded to Unicode.
		{"info@xn--bcher-kva.example", "info@bücher.example"},
		// A Unicode domain is lowercased (UTS #46 mapping).
		{"info@BÜCHER.example", "info@bücher.example"},
		// A decomposed ü (u + U+0308) in the domain becomes NFC.
		{"info@bu\u0308cher.example", "info@bücher.example"},
		// Full-width dots in a domain map to '.'.
		{"info@bücher\u3002example", "info@bücher.example"},
		// ß stays ß (non-transitional IDNA2008), it does not become "ss".
		{"info@straße.example", "info@straße.example"},
		// A Unicode local part is lowercased and NFC.
		{"J\u0041\u030Awe@example.com", "jåwe@example.com"},
		// Uppercase non-Latin letters are lowercased too.
		{"ΔΗΜΗΤΡΗΣ@example.gr", "δημητρησ@example.gr"},
		// A quoted local part that needs its quotes keeps them, lowercased.
		{`"John Doe"@example.com`, `"john doe"@example.com`},
		// A quoted dot-atom is the same mailbox unquoted (RFC 5321 §4.1.2).
		{`"jan"@example.com`, "jan@example.com"},
		// A quoted pair that needs no escaping is written plainly.
		{`"j\an"@example.com`, "jan@example.com"},
		// An escaped quote stays escaped; an @ may stand inside quotes.
		{`"a\"b@c"@example.com`, `"a\"b@c"@example.com`},
		// A quoted local part may have leading or doubled dots.
		{`".jan..x"@example.com`, `".jan..x"@example.com`},
		// An IPv4 literal is kept as a literal.
		{"jan@[192.0.2.1]", "jan@[192.0.2.1]"},
		// An IPv6 literal is kept, in canonical form with the standard tag.
		{"jan@[ipv6:2001:DB8:0:0::1]", "jan@[IPv6:2001:db8::1]"},
		// A single-label domain is syntactically fine.
		{"postmaster@localhost", "postmaster@localhost"},
		// Local part of exactly 64 octets.
		{strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
		// A label of exactly 63 octets.
		{"a@" + strings.Repeat("b", 63) + ".example", "a@" + strings.Repeat("b", 63) + ".example"},
		// Exactly 254 octets in all.
		{long(64, 189), long(64, 189)},
	}
	for _, tt := range tests {
		a, err := ParseAddress(tt.in)
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", tt.in, err)
			continue
		}
		if got := a.String(); got != tt.want {
			t.Errorf("ParseAddress(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseAddressRejects(t *testing.T) {
	tests := []struct {
		in, why string // why: a part of the error message
	}{
		// Nothing at all.
		{"", "empty"},
		// Only whitespace.
		{"  \t ", "empty"},
		// The null reverse-path is no subject.
		{"<>", "empty"},
		// Brackets must come in a pair.
		{"<jan@example.com", "angle brackets"},
		// Likewise the other way round.
		{"jan@example.com>", "angle brackets"},
		// No @.
		{"jan.example.com", "missing @"},
		// Empty local part.
		{"@example.com", "source route"},
		// An SMTP source route.
		{"<@relay.example,@b.example:jan@example.com>", "source route"},
		// Empty domain.
		{"jan@", "empty domain"},
		// Empty quoted local part.
		{`""@example.com`, "empty local part"},
		// Leading dot in a dot-atom.
		{".jan@example.com", "starts or ends with a dot"},
		// Trailing dot in a dot-atom.
		{"jan.@example.com", "starts or ends with a dot"},
		// Consecutive dots in a dot-atom.
		{"j..an@example.com", "consecutive dots"},
		// A space inside an unquoted local part.
		{"jan de@example.com", "a space"},
		// A no-break space is a space too.
		{"jan\u00a0de@example.com", "a space"},
		// A control character.
		{"jan\x00@example.com", "a control character"},
		// A control character inside quotes.
		{"\"jan\x07\"@example.com", "a control character"},
		// An invisible format character (zero-width space) would spoof.
		{"ja\u200bn@example.com", "invisible"},
		// A second @ outside quotes.
		{"jan@de@example.com", "'@'"},
		// Specials need quotes.
		{"jan(x)@example.com", "'('"},
		// Bytes that are not UTF-8.
		{"jan\xff@example.com", "UTF-8"},
		// A quoted local part must be closed.
		{`"jan@example.com`, "unterminated"},
		// And followed by the @.
		{`"jan"x@example.com`, "missing @"},
		// Local part over 64 octets.
		{strings.Repeat("a", 65) + "@example.com", "local part longer than 64"},
		// Over 64 octets once quoted.
		{`"` + strings.Repeat("a ", 32) + `"@example.com`, "local part longer than 64"},
		// A domain label over 63 octets.
		{"a@" + strings.Repeat("b", 64) + ".example", "label longer than 63"},
		// A Unicode label whose punycode is over 63 octets.
		{"a@" + strings.Repeat("ü", 60) + ".example", "label longer than 63"},
		// A domain over 255 octets.
		{"a@" + long(1, 256)[2:], "domain longer than 255"},
		// Over 254 octets in all.
		{long(64, 190), "longer than 254"},
		// An empty domain label.
		{"jan@example..com", "empty label"},
		// A leading dot in the domain.
		{"jan@.example.com", "empty label"},
		// A trailing dot in the domain (a root label is no mail domain).
		{"jan@example.com.", "empty label"},
		// A label starting with a hyphen.
		{"jan@-example.com", "hyphen"},
		// A label ending with a hyphen.
		{"jan@example-.com", "hyphen"},
		// A punycode label that decodes to one ending with a hyphen.
		{"jan@xn--bcher--rva.example", "not a valid name"},
		// An underscore is not in a host name (STD3).
		{"jan@ex_ample.com", "not a valid name"},
		// A space in the domain.
		{"jan@exa mple.com", "domain contains a space"},
		// Broken punycode.
		{"jan@xn--a.example", "not a valid name"},
		// A literal that is no IP address.
		{"jan@[example.com]", "not an IPv4"},
		// An IPv6 address without its tag.
		{"jan@[2001:db8::1]", "not an IPv4"},
		// An IPv4 address behind the IPv6 tag.
		{"jan@[IPv6:192.0.2.1]", "not an IPv6"},
		// A zone has no meaning off the host.
		{"jan@[IPv6:fe80::1%eth0]", "not an IPv6"},
		// An unterminated literal.
		{"jan@[192.0.2.1", "unterminated domain literal"},
	}
	for _, tt := range tests {
		a, err := ParseAddress(tt.in)
		if err == nil {
			t.Errorf("ParseAddress(%q) = %q, want an error", tt.in, a)
			continue
		}
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q): %v does not wrap ErrBadAddress", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ParseAddress(%q): %q does not say %q", tt.in, err, tt.why)
		}
	}
}

// TestParseAddressEqual: spellings that normalize alike are one subject, and
// one map key.
func TestParseAddressEqual(t *testing.T) {
	groups := [][]string{
		{"Jan@EXAMPLE.com", "jan@example.com", "  <jan@Example.COM> ", `"jan"@example.com`},
		{"info@xn--bcher-kva.example", "info@bücher.example", "INFO@XN--BCHER-KVA.EXAMPLE"},
	}
	for _, group := range groups {
		seen := map[Address]bool{}
		for _, s := range group {
			seen[mustParse(t, s)] = true
		}
		if len(seen) != 1 {
			t.Errorf("%q are %d different addresses, want 1", group, len(seen))
		}
	}
	if mustParse(t, "jan+a@example.com") == mustParse(t, "jan@example.com") {
		t.Error("plus-tagged address equals the untagged one")
	}
}

func TestAddressParts(t *testing.T) {
	tests := []struct {
		in                         string
		local, domain, base, ascii string
		utf8                       bool
	}{
		// Plain.
		{"jan@example.com", "jan", "example.com", "jan", "example.com", false},
		// A plus-tag is cut off only in LocalBase.
		{"Info+CRM@example.com", "info+crm", "example.com", "info", "example.com", false},
		// Only the first '+' counts.
		{"a+b+c@example.com", "a+b+c", "example.com", "a", "example.com", false},
		// A leading '+' leaves an empty base.
		{"+x@example.com", "+x", "example.com", "", "example.com", false},
		// A quoted local part is its own base.
		{`"a+b c"@example.com`, `"a+b c"`, "example.com", `"a+b c"`, "example.com", false},
		// A Unicode domain has an ASCII form and does not need SMTPUTF8.
		{"info@bücher.example", "info", "bücher.example", "info", "xn--bcher-kva.example", false},
		// A Unicode local part needs SMTPUTF8.
		{"jürgen@example.com", "jürgen", "example.com", "jürgen", "example.com", true},
		// A literal is its own ASCII form.
		{"jan@[IPv6:::1]", "jan", "[IPv6:::1]", "jan", "[IPv6:::1]", false},
	}
	for _, tt := range tests {
		a := mustParse(t, tt.in)
		if a.Local() != tt.local || a.Domain() != tt.domain || a.LocalBase() != tt.base ||
			a.ASCIIDomain() != tt.ascii || a.NeedsSMTPUTF8() != tt.utf8 {
			t.Errorf("%q: Local %q Domain %q LocalBase %q ASCIIDomain %q NeedsSMTPUTF8 %v; want %q %q %q %q %v",
				tt.in, a.Local(), a.Domain(), a.LocalBase(), a.ASCIIDomain(), a.NeedsSMTPUTF8(),
				tt.local, tt.domain, tt.base, tt.ascii, tt.utf8)
		}
	}
}

func TestAddressHashAndMask(t *testing.T) {
	a := mustParse(t, "Jan@Example.com")
	// Hex of the first 6 bytes of SHA-256("jan@example.com"), from sha256sum.
	if got, want := a.Hash(), "b82dbe5433cf"; got != want {
		t.Errorf("Hash = %q, want %q", got, want)
	}
	if a.Hash() != mustParse(t, "<jan@example.com>").Hash() {
		t.Error("equal addresses hash differently")
	}
	if a.Hash() == mustParse(t, "jan+x@example.com").Hash() {
		t.Error("different addresses hash alike")
	}
	tests := []struct{ in, want string }{
		// The first character stays.
		{"jan@example.com", "j***@example.com"},
		// A one-character local part still hides its length.
		{"j@example.com", "j***@example.com"},
		// The first character is a rune, not a byte.
		{"ådne@example.no", "å***@example.no"},
		// The quote is not the first character.
		{`"john doe"@example.com`, "j***@example.com"},
	}
	for _, tt := range tests {
		if got := mustParse(t, tt.in).Mask(); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAddressZero(t *testing.T) {
	var a Address
	if !a.IsZero() || a.String() != "" || a.Hash() != "" || a.Mask() != "" || a.ASCIIDomain() != "" || a.NeedsSMTPUTF8() {
		t.Errorf("zero Address: IsZero %v String %q Hash %q Mask %q", a.IsZero(), a, a.Hash(), a.Mask())
	}
	if mustParse(t, "a@b").IsZero() {
		t.Error("parsed Address IsZero")
	}
}

// TestAddressLogsHash: slog shows the hash, never the address.
func TestAddressLogsHash(t *testing.T) {
	var buf bytes.Buffer
	a := mustParse(t, "jan@example.com")
	slog.New(slog.NewTextHandler(&buf, nil)).Info("relayed", "subject", a)
	if strings.Contains(buf.String(), "jan") || !strings.Contains(buf.String(), "subject="+a.Hash()) {
		t.Errorf("log line %q, want the hash %s and no address", buf.String(), a.Hash())
	}
}

func TestAddressJSON(t *testing.T) {
	var v struct{ Email Address }
	if err := json.Unmarshal([]byte(`{"Email": " JAN@example.com"}`), &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"Email":"jan@example.com"}` {
		t.Errorf("round trip gave %s", out)
	}
	if err := json.Unmarshal([]byte(`{"Email": "nope"}`), &v); !errors.Is(err, ErrBadAddress) {
		t.Errorf("bad address in JSON: %v, want ErrBadAddress", err)
	}
}

func mustParse(t *testing.T, s string) Address {
	t.Helper()
	a, err := ParseAddress(s)
	if err != nil {
		t.Fatalf("ParseAddress(%q): %v", s, err)
	}
	return a
}

// long returns an address with a local part of local octets and a domain of
// exactly domain octets, in labels of at most 63.
func long(local, domain int) string {
	var labels []string
	for domain > 0 {
		n := min(domain, 63)
		if domain > n && domain-n < 2 {
			n-- // leave room for a dot and a label of one octet
		}
		labels = append(labels, strings.Repeat("d", n))
		domain -= n
		if domain > 0 {
			domain-- // the dot
		}
	}
	return strings.Repeat("l", local) + "@" + strings.Join(labels, ".")
}

// TestParseAddressNoFoldOntoASCII: a non-ASCII character is never folded
// onto ASCII, so that no address becomes another one, a role address
// above all, on its way through normalization, and the address relayed
// (as the client wrote it) names the subject decided.
func TestParseAddressNoFoldOntoASCII(t *testing.T) {
	tests := []struct{ in, want string }{
		// Capital I with dot (U+0130) lowercases to plain i in Go's simple
		// mapping: it stays itself.
		{"\u0130nfo@example.com", "\u0130nfo@example.com"},
		// The ASCII letters around it are lowercased as always.
		{"\u0130NFO@example.com", "\u0130nfo@example.com"},
		// The decomposed spelling (I + U+0307) is the same subject.
		{"I\u0307NFO@example.com", "\u0130nfo@example.com"},
		// Dotless ı (U+0131) was never ASCII and is not now.
		{"\u0131nfo@example.com", "\u0131nfo@example.com"},
		// In quotes too.
		{"\"\u0130 nfo\"@example.com", "\"\u0130 nfo\"@example.com"},
	}
	for _, tt := range tests {
		a, err := ParseAddress(tt.in)
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", tt.in, err)
			continue
		}
		if got := a.String(); got != tt.want {
			t.Errorf("ParseAddress(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if mustParse(t, "\u0130nfo@example.com") == mustParse(t, "info@example.com") {
		t.Error("\u0130nfo@ is the subject info@")
	}
	// Characters that canonical normalization itself turns into ASCII are
	// refused: kept, the address would not be NFC; mapped, it would be
	// another address than the one relayed.
	for _, in := range []string{
		"\u212Aantoor@example.com",   // KELVIN SIGN -> K
		"info\u1FEF@example.com",     // GREEK VARIA -> `
		"\"info\u037E\"@example.com", // GREEK QUESTION MARK -> ;
		"\u212Aantoor+x@example.com", // before a tag as well
	} {
		a, err := ParseAddress(in)
		if err == nil {
			t.Errorf("ParseAddress(%q) = %q, want an error", in, a)
			continue
		}
		if !errors.Is(err, ErrBadAddress) || !strings.Contains(err.Error(), "U+") {
			t.Errorf("ParseAddress(%q): %v, want ErrBadAddress naming the character", in, err)
		}
	}
}

// TestParseAddressKeepsSubjects: for every other character the local part
// is normalized as before (lowercase, then NFC), so that the subject ids of
// addresses already in a ledger do not change.
func TestParseAddressKeepsSubjects(t *testing.T) {
	// The characters that lowercasing or NFC turns into ASCII: İ and the
	// Kelvin sign (lowercase), the Kelvin sign, Greek question mark and
	// varia (NFC). They are the ones whose handling changed.
	const ontoASCII = "\u0130\u212A\u037E\u1FEF"
	before := func(s string) string { return norm.NFC.String(strings.ToLower(s)) }
	checked := 0
	for r := rune(0x80); r <= 0x2FFFF; r++ {
		// Only characters with a case, a decomposition or a combining
		// class can fare differently; the others are skipped for speed.
		cased := unicode.ToLower(r) != r || unicode.ToUpper(r) != r
		if !cased && !unicode.IsMark(r) && norm.NFD.String(string(r)) == string(r) || strings.ContainsRune(ontoASCII, r) {
			continue
		}
		for _, local := range []string{"A" + string(r), "a" + string(r) + "\u0301", "I" + string(r) + "\u0323"} {
			if strings.ContainsRune(norm.NFC.String(local), '\u0130') {
				continue // I + U+0307: the dotted capital I, changed on purpose
			}
			a, err := ParseAddress(local + "@example.com")
			if err != nil {
				continue // refused before as well: a mark cannot lead, a letter may be invisible
			}
			checked++
			if want := before(local); a.Local() != want {
				t.Fatalf("local part %q: %q, before %q", local, a.Local(), want)
			}
		}
	}
	if checked < 10000 {
		t.Errorf("only %d local parts checked", checked)
	}
}
