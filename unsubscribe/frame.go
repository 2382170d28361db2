package unsubscribe

import (
	"encoding/base64"
	"fmt"
	"net/http"

	"optinproxy/optin"
)

// The recipient's other pages (the personal portal) are built on these
// pages' frame: the same look, the same languages, the same headers.

// Style is the stylesheet of these pages, for a page that looks alike and
// adds its own rules after it.
func Style() string { return pageStyle }

// PageCSP is the Content-Security-Policy of a page whose only style is
// style, inline in one <style> element: nothing else loads, and forms
// post to the page's own origin only.
func PageCSP(style string) string {
	return fmt.Sprintf("default-src 'none'; style-src 'sha256-%s'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
		base64.StdEncoding.EncodeToString(sha256Sum(style)))
}

// SetPageHeaders sets the headers of a page that a link's token opens:
// the policy csp (see PageCSP), and no caching and no Referer, because
// the token in the URL is a credential.
func SetPageHeaders(h http.Header, csp string) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

// RequestEvidence is the evidence a page's request gives of who acted:
// the client's IP and its user agent (cut to 256 bytes).
func RequestEvidence(r *http.Request) optin.Evidence {
	return optin.Evidence{IP: remoteIP(r), UserAgent: truncate(r.UserAgent(), 256)}
}

// Languages picks the language of a page: ?lang= first, then the
// browser's Accept-Language, then the default. Safe for concurrent use.
type Languages struct{ p languagePicker }

// NewLanguages makes a picker whose default is def, "nl" (also for "")
// or "en".
func NewLanguages(def string) (Languages, error) {
	if def == "" {
		def = Dutch
	}
	if _, ok := texts[def]; !ok {
		return Languages{}, fmt.Errorf("unsubscribe: language %q, want nl or en", def)
	}
	return Languages{newLanguagePicker(def)}, nil
}

// Pick returns the language of r's page: "nl" or "en".
func (l Languages) Pick(r *http.Request) string { return l.p.pick(r).Lang }
