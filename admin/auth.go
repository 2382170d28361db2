package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Token is a configured API token. Only its SHA-256 is kept, so a leaked
// configuration or memory dump does not give the token away.
type Token struct {
	Name   string
	SHA256 [32]byte
	Scopes []string
}

// HashToken is the SHA-256 of a token as Token.SHA256 holds it.
func HashToken(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

func checkTokens(tokens []Token) error {
	seen := map[string]bool{}
	for _, t := range tokens {
		if t.Name == "" || seen[t.Name] {
			return fmt.Errorf("admin: token name %q empty or repeated", t.Name)
		}
		seen[t.Name] = true
		for _, s := range t.Scopes {
			if s != ScopeRead && s != ScopeWrite && s != ScopeErase {
				return fmt.Errorf("admin: token %q: unknown scope %q", t.Name, s)
			}
		}
	}
	if len(tokens) == 0 {
		return errors.New("admin: no tokens: the API would be unusable")
	}
	return nil
}

// principal is the caller a token stands for.
type principal struct {
	name   string
	scopes []string
}

func (p principal) has(scope string) bool { return slices.Contains(p.scopes, scope) }

// actor is how the caller appears in events.
func (p principal) actor() string { return "token:" + p.name }

// authenticate finds the token of the Authorization header. Every
// configured token is compared, in constant time, whether or not an
// earlier one matched, so timing tells nothing about which exist.
func (a *API) authenticate(r *http.Request) (principal, bool) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return principal{}, false
	}
	sum := HashToken(strings.TrimSpace(secret))
	var found principal
	match := 0
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.SHA256[:]) == 1 {
			found = principal{name: t.Name, scopes: t.Scopes}
			match = 1
		}
	}
	return found, match == 1
}
