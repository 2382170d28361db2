package unsubscribe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

var (
	secretA = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210")
	secretC = []byte("a third secret that no instance of this test holds")
)

func mustTokens(t testing.TB, current []byte, previous ...[]byte) *Tokens {
	t.Helper()
	tk, err := NewTokens(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func mustAddress(t testing.TB, s string) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func testClaim(t testing.TB) Claim {
	return Claim{
		Subject: mustAddress(t, "jan.jansen@example.com"),
		Purpose: "newsletter",
		Message: "mid:<20260301.1234@crm.example>",
		Issued:  time.Date(2026, 3, 1, 12, 30, 45, 999, time.UTC),
	}
}

func TestTokenRoundTrip(t *testing.T) {
	tk := mustTokens(t, secretA)
	c := testClaim(t)
	s := tk.Issue(c)
	got, err := tk.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256Hex(c.Message)[:16]
	want := Claim{Subject: c.Subject, Purpose: "newsletter", Message: sum, Issued: time.Date(2026, 3, 1, 12, 30, 45, 0, time.UTC)}
	if got != want {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
	// The same claim gives the same token; the parsed claim too.
	if again := tk.Issue(c); again != s {
		t.Errorf("issued twice: %q and %q", s, again)
	}
	if again := tk.Issue(got); again != s {
		t.Errorf("the parsed claim issues %q, want %q", again, s)
	}
	// A different claim gives a different token.
	other := c
	other.Purpose = "offers"
	if tk.Issue(other) == s {
		t.Error("two purposes, one token")
	}
	// No message and no time stay empty.
	bare := Claim{Subject: c.Subject, Purpose: "newsletter"}
	got, err = tk.Parse(tk.Issue(bare))
	if err != nil || got.Message != "" || got.Issued.Unix() != 0 {
		t.Errorf("bare claim parsed to %+v, %v", got, err)
	}
}

func TestTokenLength(t *testing.T) {
	tk := mustTokens(t, secretA)
	for _, tt := range []struct {
		addr string
		max  int
	}{
		{"jan@example.com", 91},
		{"jan.jansen@example.com", 100},
	} {
		c := testClaim(t)
		c.Subject = mustAddress(t, tt.addr)
		s := tk.Issue(c)
		t.Logf("%s, purpose newsletter: %d characters", tt.addr, len(s))
		if len(s) > tt.max {
			t.Errorf("%s: token of %d characters, want at most %d", tt.addr, len(s), tt.max)
		}
		if strings.ContainsAny(s, "+/=") {
			t.Errorf("token %q is not URL-safe", s)
		}
	}
}

func TestTokenTamperedFails(t *testing.T) {
	tk := mustTokens(t, secretA)
	s := tk.Issue(testClaim(t))
	raw, err := tokenEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for _, flip := range []byte{0x01, 0x80} {
			b := bytes.Clone(raw)
			b[i] ^= flip
			if c, err := tk.Parse(tokenEncoding.EncodeToString(b)); !errors.Is(err, ErrBadToken) {
				t.Errorf("byte %d ^ %#x: parsed %+v, %v; want ErrBadToken", i, flip, c, err)
			}
		}
	}
	for _, bad := range []string{"", "x", s[:len(s)-1], s + "A", s[:10], strings.Repeat("A", 2000), "!" + s[1:], s + "=", s[:20] + "\n" + s[20:], s[:20] + "\r\n" + s[20:]} {
		if _, err := tk.Parse(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("Parse(%q): %v, want ErrBadToken", bad, err)
		}
	}
}

func TestTokenErrorsSayWhy(t *testing.T) {
	tk := mustTokens(t, secretA)
	s := tk.Issue(testClaim(t))
	raw, _ := tokenEncoding.DecodeString(s)
	tampered := bytes.Clone(raw)
	tampered[len(tampered)-1] ^= 1
	version := bytes.Clone(raw)
	version[0] = 2
	for _, tt := range []struct {
		name, token, want string
	}{
		{"garbage", "not a token!", "malformed"},
		{"short", tokenEncoding.EncodeToString(raw[:20]), "malformed"},
		{"kind", tokenEncoding.EncodeToString(version), "malformed: kind 2, want 1"},
		{"tampered", tokenEncoding.EncodeToString(tampered), "tampered"},
		{"unknown key", mustTokens(t, secretC).Issue(testClaim(t)), "unknown key"},
	} {
		_, err := tk.Parse(tt.token)
		if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrBadToken saying %q", tt.name, err, tt.want)
		}
	}
}

// TestTokenKinds: a token opens only as the kind it was issued as, even
// with the same claim and secret (the kind is authenticated), so an
// unsubscribe link from a mail cannot be used as a portal link.
func TestTokenKinds(t *testing.T) {
	tk := mustTokens(t, secretA)
	c := testClaim(t)
	kinds := []Kind{KindUnsubscribe, KindConfirm, KindPortal}
	for _, issued := range kinds {
		s := tk.IssueKind(issued, c)
		for _, parsed := range kinds {
			got, err := tk.ParseKind(parsed, s)
			if issued == parsed && (err != nil || got.Subject != c.Subject) {
				t.Errorf("kind %d as itself: %+v %v", issued, got, err)
			}
			if issued != parsed && !errors.Is(err, ErrBadToken) {
				t.Errorf("kind %d opened as kind %d: %+v %v", issued, parsed, got, err)
			}
		}
		// Changing the kind byte alone breaks the seal.
		raw, _ := tokenEncoding.DecodeString(s)
		raw[0] = byte(KindPortal)
		if issued != KindPortal {
			if _, err := tk.ParseKind(KindPortal, tokenEncoding.EncodeToString(raw)); !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "tampered") {
				t.Errorf("kind %d relabelled as a portal token: %v", issued, err)
			}
		}
	}
}

func TestTokenRotation(t *testing.T) {
	old := mustTokens(t, secretA)
	rotated := mustTokens(t, secretB, secretA)
	c := testClaim(t)
	s := old.Issue(c)
	got, err := rotated.Parse(s)
	if err != nil {
		t.Fatalf("a token of the previous secret: %v", err)
	}
	if got.Subject != c.Subject || got.Purpose != c.Purpose {
		t.Errorf("parsed %+v", got)
	}
	// New tokens are issued under the new secret, which the old
	// instance does not know.
	fresh := rotated.Issue(c)
	if fresh == s {
		t.Error("the rotated set issues under the old secret")
	}
	if _, err := old.Parse(fresh); !errors.Is(err, ErrBadToken) {
		t.Errorf("old instance parsed a new token: %v", err)
	}
	// Once the old secret is dropped, its tokens fail.
	if _, err := mustTokens(t, secretB).Parse(s); !errors.Is(err, ErrBadToken) {
		t.Errorf("dropped secret still verifies: %v", err)
	}
}

// TestTokenKeyIDCollision: two secrets may share a key id; the token of
// either still parses.
func TestTokenKeyIDCollision(t *testing.T) {
	a := mustTokens(t, secretA)
	var twin []byte
	for i := 0; i < 10000 && twin == nil; i++ {
		s := []byte(strings.Repeat("k", 16) + hex.EncodeToString([]byte{byte(i), byte(i >> 8)}))
		if k := mustTokens(t, s); k.keys[0].id == a.keys[0].id {
			twin = s
		}
	}
	if twin == nil {
		t.Fatal("no secret with the same key id in 10000 tries")
	}
	both := mustTokens(t, twin, secretA)
	if _, err := both.Parse(a.Issue(testClaim(t))); err != nil {
		t.Errorf("token of the second secret with a shared id: %v", err)
	}
	if _, err := both.Parse(mustTokens(t, twin).Issue(testClaim(t))); err != nil {
		t.Errorf("token of the first secret with a shared id: %v", err)
	}
}

func TestTokenHidesAddress(t *testing.T) {
	tk := mustTokens(t, secretA)
	for _, addr := range []string{"jan.jansen@example.com", "aaaaaaaaaaaaaaaa@aaaaaaaaaa.example"} {
		c := testClaim(t)
		c.Subject = mustAddress(t, addr)
		s := tk.Issue(c)
		raw, _ := tokenEncoding.DecodeString(s)
		local, domain, _ := strings.Cut(addr, "@")
		for _, part := range []string{addr, local, domain, "newsletter"} {
			if bytes.Contains(raw, []byte(part)) || strings.Contains(s, part) {
				t.Errorf("token %q shows %q", s, part)
			}
		}
	}
}

func TestNewTokensRefusesShortSecrets(t *testing.T) {
	for _, tt := range []struct {
		current  []byte
		previous [][]byte
	}{
		{nil, nil},
		{[]byte("short"), nil},
		{secretA, [][]byte{[]byte("")}},
	} {
		if _, err := NewTokens(tt.current, tt.previous...); err == nil {
			t.Errorf("NewTokens(%q, %q) accepted", tt.current, tt.previous)
		}
	}
}

func TestTokenIssuedClamped(t *testing.T) {
	tk := mustTokens(t, secretA)
	c := testClaim(t)
	for _, tt := range []struct {
		in   time.Time
		want int64
	}{
		{time.Time{}, 0},
		{time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), 1<<32 - 1},
	} {
		c.Issued = tt.in
		got, err := tk.Parse(tk.Issue(c))
		if err != nil || got.Issued.Unix() != tt.want {
			t.Errorf("issued %v: parsed %v, %v; want Unix %d", tt.in, got.Issued, err, tt.want)
		}
	}
}
