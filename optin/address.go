package optin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Length limits, counted in octets of the normalized form.
const (
	maxLocalOctets   = 64  // rfc/5321:4.5.3.1.1
	maxDomainOctets  = 255 // rfc/5321:4.5.3.1.2
	maxAddressOctets = 254 // rfc/5321:4.5.3.1.3: a 256-octet path less its angle brackets
	maxLabelOctets   = 63  // rfc/1035:2.3.4
)

// domainProfile maps a domain the way a resolver does (UTS #46): case folded,
// NFC, full-width dots mapped, xn-- labels checked. Non-transitional, so ß and
// ς stay themselves instead of becoming "ss" and "σ" (IDNA2008). Lengths and
// empty labels are checked by us, for messages that say what is wrong.
var domainProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.CheckHyphens(true),
	idna.CheckJoiners(true),
)

// Address is a normalized email address, the identity of a subject.
// The local part is lowercased and in NFC, and quoted only when it is not a
// dot-atom; plus-tags are kept. Lowercasing never turns a non-ASCII
// character into ASCII (İ stays İ; see normalizeLocal). The domain is
// lowercased, in Unicode (xn-- labels decoded) and NFC; an IP literal is
// kept as a literal. Two Addresses are == exactly when they name the same
// subject, so Address is usable as a map key. The zero Address is "no
// address"; every other value comes from ParseAddress. Values are
// immutable and safe for concurrent use.
type Address struct {
	local, domain string
}

// ParseAddress normalizes s into an Address. It accepts surrounding
// whitespace and one pair of surrounding angle brackets (an SMTP path), a
// quoted local part, an internationalized local part and domain (RFC 6531),
// and IPv4 or IPv6 domain literals. Anything else, or anything over the
// length limits of RFC 5321, is an error wrapping ErrBadAddress whose text
// says what is wrong but does not repeat the address.
func ParseAddress(s string) (Address, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") || strings.HasSuffix(s, ">") {
		if len(s) < 2 || s[0] != '<' || s[len(s)-1] != '>' {
			return Address{}, bad("unbalanced angle brackets")
		}
		s = s[1 : len(s)-1]
	}
	switch {
	case s == "":
		return Address{}, bad("empty")
	case !utf8.ValidString(s):
		return Address{}, bad("not valid UTF-8")
	case s[0] == '@':
		// rfc/5321:4.1.2 source routes are obsolete; we do not relay by them.
		return Address{}, bad("source routes are not supported")
	}
	rawLocal, rawDomain, err := splitAddress(s)
	if err != nil {
		return Address{}, err
	}
	local, err := parseLocal(rawLocal)
	if err != nil {
		return Address{}, err
	}
	domain, ascii, err := parseDomain(rawDomain)
	if err != nil {
		return Address{}, err
	}
	// Whichever domain form goes on the wire, the path must fit.
	if len(local)+1+max(len(domain), len(ascii)) > maxAddressOctets {
		return Address{}, bad("longer than %d octets", maxAddressOctets)
	}
	return Address{local: local, domain: domain}, nil
}

// String returns the normalized address, local@domain; "" for the zero
// Address. ParseAddress(a.String()) == a.
func (a Address) String() string {
	if a.IsZero() {
		return ""
	}
	return a.local + "@" + a.domain
}

// appendTo appends String's form of a to b, without making a string.
func (a Address) appendTo(b []byte) []byte {
	if a.IsZero() {
		return b
	}
	return append(append(append(b, a.local...), '@'), a.domain...)
}

// Local returns the normalized local part, with its quotes if it is quoted.
func (a Address) Local() string { return a.local }

// Domain returns the normalized domain in Unicode, or the IP literal with its
// brackets.
func (a Address) Domain() string { return a.domain }

// LocalBase returns the local part before its first '+', the part that names
// the mailbox (for matching role addresses such as info+crm@). A quoted local
// part is returned whole. The result is empty when the local part starts
// with '+'.
func (a Address) LocalBase() string {
	if strings.HasPrefix(a.local, `"`) {
		return a.local
	}
	base, _, _ := strings.Cut(a.local, "+")
	return base
}

// ASCIIDomain returns the domain in its ASCII (punycode) form, as an
// upstream without SMTPUTF8 needs it; IP literals are returned as they are.
// It returns "" for the zero Address.
func (a Address) ASCIIDomain() string {
	if a.domain == "" || a.domain[0] == '[' {
		return a.domain
	}
	ascii, err := domainProfile.ToASCII(a.domain)
	if err != nil {
		// ParseAddress already converted this domain once.
		return ""
	}
	return ascii
}

// IsZero reports whether a is the zero Address.
func (a Address) IsZero() bool { return a == Address{} }

// NeedsSMTPUTF8 reports whether the local part has non-ASCII characters, so
// that only an SMTPUTF8 upstream can take it (rfc/6531:3.4). A Unicode
// domain alone does not: ASCIIDomain serves those upstreams.
func (a Address) NeedsSMTPUTF8() bool {
	for i := 0; i < len(a.local); i++ {
		if a.local[i] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// Hash returns a short stable identifier of the address for logs and
// metrics, in place of the address itself: the hex of the first 6 bytes of
// SHA-256 over String(). It is unkeyed, so whoever already has a candidate
// address can confirm it: it keeps addresses out of logs, it does not make
// them secret. It returns "" for the zero Address.
func (a Address) Hash() string {
	if a.IsZero() {
		return ""
	}
	sum := sha256.Sum256([]byte(a.String()))
	return hex.EncodeToString(sum[:6])
}

// Mask returns the address with all but the first character of its local
// part hidden, e.g. "j***@example.com", for pages and messages shown to
// people who may not see the whole address. It returns "" for the zero
// Address.
func (a Address) Mask() string {
	if a.IsZero() {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(strings.TrimPrefix(a.local, `"`))
	return string(r) + "***@" + a.domain
}

// LogValue makes slog record the Hash, so a logged Address never shows the
// address itself (no personal data in logs). Log String() explicitly where that is
// intended.
func (a Address) LogValue() slog.Value { return slog.StringValue(a.Hash()) }

// MarshalText returns String(), so an Address is a JSON or YAML string.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses text with ParseAddress; on error a is unchanged.
func (a *Address) UnmarshalText(text []byte) error {
	parsed, err := ParseAddress(string(text))
	if err != nil {
		return err
	}
	*a = parsed
	return nil
}

var (
	_ slog.LogValuer = Address{}
	_ fmt.Stringer   = Address{}
)

// splitAddress splits s at the @ that ends the local part: after a quoted
// local part, else the last @ (an unquoted local part cannot hold one, and
// parseLocal then names it).
func splitAddress(s string) (local, domain string, err error) {
	if s[0] == '"' {
		end := closingQuote(s)
		if end < 0 {
			return "", "", bad("unterminated quoted local part")
		}
		rest, ok := strings.CutPrefix(s[end+1:], "@")
		if !ok {
			return "", "", bad("missing @ after the quoted local part")
		}
		return s[:end+1], rest, nil
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", "", bad("missing @")
	}
	return s[:at], s[at+1:], nil
}

// closingQuote returns the index of the '"' that closes the quoted string
// opening s, skipping quoted pairs, or -1.
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // rfc/5322:3.2.1 quoted-pair; a multi-byte rune's tail bytes are never '"' or '\'
		case '"':
			return i
		}
	}
	return -1
}

// parseLocal normalizes a local part. A quoted one whose content is a
// dot-atom loses its quotes (rfc/5321:4.1.2 makes the two equivalent), so
// that equal mailboxes get one form.
func parseLocal(raw string) (string, error) {
	if raw == "" {
		return "", bad("empty local part")
	}
	quoted := raw[0] == '"'
	text := raw
	if quoted {
		text = unquote(raw)
		if text == "" {
			return "", bad("empty local part")
		}
	}
	text, odd := normalizeLocal(text)
	if odd != 0 {
		return "", bad("local part contains U+%04X, which normalization would turn into ASCII", odd)
	}
	var local string
	switch {
	case dotAtomError(text) == "":
		local = text
	case quoted:
		for _, r := range text {
			if r != ' ' && !allowedRune(r) {
				return "", bad("local part contains %s", describeRune(r))
			}
		}
		local = quote(text)
	default:
		return "", bad("local part %s", dotAtomError(text))
	}
	if len(local) > maxLocalOctets {
		return "", bad("local part longer than %d octets", maxLocalOctets)
	}
	return local, nil
}

// normalizeLocal lowercases a local part and puts it in NFC, without ever
// turning a non-ASCII character into ASCII: Go's lowercase of İ (U+0130) is
// i, and of the Kelvin sign K, so İnfo@ would become the role address info@
// while the upstream gets İnfo@ (a different mailbox to whoever does not
// fold Unicode case). Such characters are kept as they are. A character
// that NFC itself maps to ASCII (the Kelvin sign to K, and two Greek
// punctuation marks) cannot be kept in an NFC address: it is returned as
// odd and the local part is refused. Any other input, but I + U+0307 (now
// İ, like its composed form), gets what it always got, lowercase then NFC,
// so that stored subjects keep their ids.
func normalizeLocal(s string) (folded string, odd rune) {
	ascii := true
	for _, r := range s {
		if r >= utf8.RuneSelf {
			ascii = false
			if nfcToASCII(r) {
				return "", r
			}
		}
	}
	if ascii {
		return strings.ToLower(s), 0
	}
	// NFC first, so that I + U+0307 is İ as well.
	return norm.NFC.String(strings.Map(lowerInPlace, norm.NFC.String(s))), 0
}

// lowerInPlace lowercases r unless that would make a non-ASCII r ASCII.
func lowerInPlace(r rune) rune {
	l := unicode.ToLower(r)
	if r >= utf8.RuneSelf && l < utf8.RuneSelf {
		return r
	}
	return l
}

// nfcToASCII reports whether NFC turns r into (or into something holding)
// ASCII.
func nfcToASCII(r rune) bool {
	n := norm.NFC.String(string(r))
	return strings.IndexFunc(n, func(c rune) bool { return c < utf8.RuneSelf }) >= 0
}

// dotAtomError returns why s is not a dot-atom (rfc/5322:3.2.3, with the
// non-ASCII characters of rfc/6532:3.2), or "" when it is one.
func dotAtomError(s string) string {
	switch {
	case s == "":
		return "is empty"
	case s[0] == '.' || s[len(s)-1] == '.':
		return "starts or ends with a dot"
	case strings.Contains(s, ".."):
		return "has consecutive dots"
	}
	for _, r := range s {
		if r != '.' && !isAtext(r) {
			return "contains " + describeRune(r)
		}
	}
	return ""
}

// isAtext reports whether r may stand in a dot-atom.
func isAtext(r rune) bool {
	switch {
	case r >= utf8.RuneSelf:
		return allowedRune(r)
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// allowedRune reports whether r may appear in a local part at all: printable
// ASCII, or a visible non-ASCII character. Spaces, controls and invisible
// format characters are refused because they make addresses that look alike
// but are not equal; the two joiners are kept for the scripts that need them.
func allowedRune(r rune) bool {
	if r < utf8.RuneSelf {
		return '!' <= r && r <= '~'
	}
	if r == '\u200c' || r == '\u200d' {
		return true
	}
	return unicode.IsGraphic(r) && !unicode.IsSpace(r)
}

// describeRune names r for an error message.
func describeRune(r rune) string {
	switch {
	case unicode.IsSpace(r):
		return "a space"
	case unicode.IsControl(r):
		return "a control character"
	case !unicode.IsGraphic(r):
		return fmt.Sprintf("an invisible character U+%04X", r)
	}
	return fmt.Sprintf("an invalid character %q", r)
}

// unquote returns the content of a quoted string, quoted pairs resolved.
// raw runs from the opening to the closing quote.
func unquote(raw string) string {
	inner := raw[1 : len(raw)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		if inner[i] == '\\' && i+1 < len(inner) {
			i++
		}
		b.WriteByte(inner[i])
	}
	return b.String()
}

// quote makes a quoted string of s, escaping only what must be escaped.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// parseDomain normalizes a domain and returns it in Unicode and in ASCII.
func parseDomain(raw string) (domain, ascii string, err error) {
	if raw == "" {
		return "", "", bad("empty domain")
	}
	if raw[0] == '[' {
		lit, err := parseLiteral(raw)
		return lit, lit, err
	}
	for _, r := range raw {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", "", bad("domain contains %s", describeRune(r))
		}
	}
	// Checked before IDNA for a clear message, and after, because the
	// mapping turns other dots into '.' and may delete characters.
	if err := checkLabels(raw); err != nil {
		return "", "", err
	}
	domain, err = domainProfile.ToUnicode(raw)
	if err != nil {
		return "", "", fmt.Errorf("%w: domain is not a valid name: %v", ErrBadAddress, err)
	}
	if err := checkLabels(domain); err != nil {
		return "", "", err
	}
	ascii, err = domainProfile.ToASCII(domain)
	if err != nil {
		return "", "", fmt.Errorf("%w: domain is not a valid name: %v", ErrBadAddress, err)
	}
	for label := range strings.SplitSeq(ascii, ".") {
		if len(label) > maxLabelOctets {
			return "", "", bad("domain label longer than %d octets", maxLabelOctets)
		}
	}
	if max(len(domain), len(ascii)) > maxDomainOctets {
		return "", "", bad("domain longer than %d octets", maxDomainOctets)
	}
	return domain, ascii, nil
}

// checkLabels refuses empty labels (which also covers a trailing dot) and
// labels that start or end with a hyphen (rfc/5891:4.2.3.1).
func checkLabels(domain string) error {
	for label := range strings.SplitSeq(domain, ".") {
		switch {
		case label == "":
			return bad("domain has an empty label")
		case label[0] == '-' || label[len(label)-1] == '-':
			return bad("domain label starts or ends with a hyphen")
		}
	}
	return nil
}

// parseLiteral accepts an IPv4 or IPv6 address literal (rfc/5321:4.1.3) and
// returns it in canonical form, so that one address has one spelling.
// General address literals have no use here and are refused.
func parseLiteral(raw string) (string, error) {
	if len(raw) < 2 || raw[len(raw)-1] != ']' {
		return "", bad("unterminated domain literal")
	}
	inner := raw[1 : len(raw)-1]
	if len(inner) >= 5 && strings.EqualFold(inner[:5], "IPv6:") {
		ip, err := netip.ParseAddr(inner[5:])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", bad("domain literal is not an IPv6 address")
		}
		return "[IPv6:" + ip.String() + "]", nil
	}
	ip, err := netip.ParseAddr(inner)
	if err != nil || !ip.Is4() {
		return "", bad("domain literal is not an IPv4 address")
	}
	return "[" + ip.String() + "]", nil
}

// bad returns an error wrapping ErrBadAddress with a formatted reason.
func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadAddress}, args...)...)
}
