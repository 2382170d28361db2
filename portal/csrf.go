package portal

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
)

// Every POST of the portal carries a CSRF token (unlike /u/ and /confirm/,
// whose token is credential enough) bound to two things: the portal token of the page
// the form is on, and a random value in a cookie of the browser that
// loaded it (SameSite=Strict, HttpOnly). A page on another site can
// neither read the cookie nor compute the token without the secret, and a
// token copied from one portal does not work in another. The browser's
// own signal (Sec-Fetch-Site, else Origin) refuses cross-site posts
// before the token is looked at.

// csrfField is the forms' hidden field.
const csrfField = "csrf"

// cookieBytes is the random part of the cookie.
const cookieBytes = 32

var b64 = base64.RawURLEncoding

// csrfKey is the HMAC key of the tokens, derived from the secret.
type csrfKey []byte

func newCSRFKey(secret []byte) csrfKey {
	k, err := hkdf.Key(sha256.New, secret, nil, "optinproxy portal csrf v1", 32)
	if err != nil {
		panic(err) // only for an output longer than HKDF gives
	}
	return k
}

// token is the CSRF token of the forms of the page of portal (the /p/
// token, "" for the request form at /p) in the browser whose cookie is
// cookie.
func (k csrfKey) token(cookie, portal string) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(cookie))
	m.Write([]byte{0})
	m.Write([]byte(portal))
	return b64.EncodeToString(m.Sum(nil))
}

// valid compares in constant time.
func (k csrfKey) valid(cookie, portal, given string) bool {
	return cookie != "" && hmac.Equal([]byte(k.token(cookie, portal)), []byte(given))
}

// cookieName: with https, the __Host- prefix keeps a sibling subdomain
// from setting the cookie for us.
func (h *Handler) cookieName() string {
	if h.secure {
		return "__Host-optinproxy_portal"
	}
	return "optinproxy_portal"
}

// cookie returns the browser's cookie value, "" when it has none that is
// ours.
func (h *Handler) cookie(r *http.Request) string {
	c, err := r.Cookie(h.cookieName())
	if err != nil {
		return ""
	}
	if b, err := b64.DecodeString(c.Value); err != nil || len(b) != cookieBytes {
		return ""
	}
	return c.Value
}

// ensureCookie returns the browser's cookie, setting a new one when it
// has none, for a page whose forms need it.
func (h *Handler) ensureCookie(w http.ResponseWriter, r *http.Request) (string, error) {
	if v := h.cookie(r); v != "" {
		return v, nil
	}
	b := make([]byte, cookieBytes)
	if _, err := io.ReadFull(h.o.Rand, b); err != nil {
		return "", err
	}
	v := b64.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: h.cookieName(), Value: v, Path: "/", HttpOnly: true, Secure: h.secure,
		SameSite: http.SameSiteStrictMode})
	return v, nil
}

// checkPost refuses a POST that comes from another site or lacks the CSRF
// token of portal's page in this browser. The form must be parsed.
func (h *Handler) checkPost(r *http.Request, portal string) bool {
	if h.origins.Check(r) != nil {
		return false
	}
	return h.csrf.valid(h.cookie(r), portal, r.PostForm.Get(csrfField))
}
