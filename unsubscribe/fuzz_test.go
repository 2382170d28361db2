package unsubscribe

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"
)

func encodeStd(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// FuzzParseToken: Parse never panics, fails only with ErrBadToken, and a
// token that parses is exactly the one its claim issues (one spelling per
// claim, so a token cannot be varied to dodge a check).
func FuzzParseToken(f *testing.F) {
	tk := mustTokens(f, secretA)
	f.Add(tk.Issue(testClaim(f)))
	f.Add(tk.Issue(Claim{Subject: mustAddress(f, "\"a b\"@[192.0.2.1]"), Purpose: "x"}))
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := tk.Parse(s)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("Parse(%q): %v, not ErrBadToken", s, err)
			}
			return
		}
		if again := tk.Issue(c); again != s {
			t.Fatalf("Parse(%q) = %+v, which issues %q", s, c, again)
		}
	})
}
