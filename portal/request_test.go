package portal_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"optinproxy/portal"
)

// requestLink fills the form at /p as a browser does and returns the
// answer to the POST and to the GET it redirects to.
func (e *env) requestLink(addr string, header ...string) (post *http.Response, answer string) {
	e.t.Helper()
	csrf := e.csrf(e.url + "/p")
	resp, body := e.post(e.url+"/p", url.Values{"csrf": {csrf}, "email": {addr}}, header...)
	if resp.StatusCode != http.StatusSeeOther {
		return resp, body
	}
	_, body = e.get(e.url+resp.Header.Get("Location"), header...)
	return resp, body
}

// A known and an unknown address get the same answer; only the known
// one gets a mail, with a link that opens its portal.
func TestRequestLink(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		known, knownPage := e.requestLink("Jan@Example.com", "Accept-Language", "en-GB,en")
		unknown, unknownPage := e.requestLink("nobody@example.com", "Accept-Language", "en-GB,en")
		if known.StatusCode != unknown.StatusCode || known.Header.Get("Location") != unknown.Header.Get("Location") || knownPage != unknownPage {
			t.Errorf("the answers differ:\nknown %d %s\n%s\nunknown %d %s\n%s", known.StatusCode, known.Header.Get("Location"), knownPage,
				unknown.StatusCode, unknown.Header.Get("Location"), unknownPage)
		}
		if !strings.Contains(knownPage, "If we hold data about this address, a link is on its way") || !strings.Contains(knownPage, "24 hours") {
			t.Errorf("answer: %s", knownPage)
		}
		e.h.Close() // waits for the mailing
		sent := e.mail.sent()
		if len(sent) != 1 || sent[0].to != e.jan || sent[0].lang != "en" {
			t.Fatalf("mailed %+v, want one link to jan in English", sent)
		}
		if d := time.Until(sent[0].expires); d < 23*time.Hour || d > 24*time.Hour {
			t.Errorf("link expires in %v, want 24h", d)
		}
		if !strings.HasPrefix(sent[0].link, e.url+"/p/") {
			t.Errorf("link %s", sent[0].link)
		}
		resp, body := e.get(sent[0].link)
		wantStatus(t, "the mailed link", resp, body, 200, "jan@example.com", "Onze maandelijkse nieuwsbrief")
		if n := e.counted("request"); n != 2 {
			t.Errorf("requests counted: %v", n)
		}
	})
}

// A request form answer is never cached and carries the pages' headers.
func TestRequestFormPage(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	resp, body := e.get(e.url + "/p")
	wantStatus(t, "GET /p", resp, body, 200, `<html lang="nl">`, `<label for="email">E-mailadres</label>`, `id="email" name="email"`,
		`<meta name="robots" content="noindex, nofollow">`, `action="/p"`)
	checkPageHeaders(t, resp)
	checkAccessible(t, body)
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"optinproxy_portal=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("cookie %q is Secure on an http public URL", cookie)
	}
	// A bad address gets the form again with the problem, nothing else.
	csrf := csrfPattern.FindStringSubmatch(body)[1]
	resp, body = e.post(e.url+"/p?lang=en", url.Values{"csrf": {csrf}, "email": {"not an address"}})
	wantStatus(t, "bad address", resp, body, 400, "This is not a valid email address", `aria-invalid="true"`, `value="not an address"`,
		`role="status"`, `action="/p?lang=en"`)
	if n := e.counted("request"); n != 0 {
		t.Errorf("a bad address counted as a request: %v", n)
	}
}

// Over a limit the form answers 429 and mails nothing, known address or
// not; the next window takes requests again.
func TestRequestLimits(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		for i := range 3 {
			if resp, body := e.requestLink("jan@example.com"); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("request %d: %d\n%s", i+1, resp.StatusCode, body)
			}
		}
		for _, addr := range []string{"jan@example.com", "JAN@example.com"} {
			resp, body := e.requestLink(addr)
			wantStatus(t, "4th request for jan", resp, body, http.StatusTooManyRequests, "Er is niets verstuurd")
		}
		// Another address from the same client is still taken.
		if resp, _ := e.requestLink("piet@example.com"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("another address: %d", resp.StatusCode)
		}
		e.clock.Advance(time.Hour)
		if resp, _ := e.requestLink("jan@example.com"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("after the window: %d", resp.StatusCode)
		}
		e.h.Close()
		if n := len(e.mail.sent()); n != 4 {
			t.Errorf("%d links mailed, want 4 (3, then 1 after the window)", n)
		}
		if n := e.counted("limited"); n != 2 {
			t.Errorf("limited counted: %v", n)
		}
	})
}

// One client cannot use the form for many addresses.
func TestRequestLimitPerClient(t *testing.T) {
	e := newEnv(t, backends[0].open(t), func(o *portal.Options) { o.Limits = portal.Limits{PerClient: 2} })
	for i, addr := range []string{"a@example.com", "b@example.com"} {
		if resp, _ := e.requestLink(addr); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("request %d: %d", i+1, resp.StatusCode)
		}
	}
	resp, body := e.requestLink("jan@example.com")
	wantStatus(t, "3rd address", resp, body, http.StatusTooManyRequests)
	e.h.Close()
	if n := len(e.mail.sent()); n != 0 {
		t.Errorf("%d links mailed, want none (a, b unknown; jan over the limit)", n)
	}
}

// The form refuses a post without its cookie or its token, or from
// another site, and mails nothing.
func TestRequestCSRF(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	csrf := e.csrf(e.url + "/p")
	for _, tc := range []struct {
		name   string
		form   url.Values
		header []string
		fresh  bool // a browser without the cookie
	}{
		{"no token", url.Values{"email": {"jan@example.com"}}, nil, false},
		{"wrong token", url.Values{"email": {"jan@example.com"}, "csrf": {strings.Repeat("A", 43)}}, nil, false},
		{"no cookie", url.Values{"email": {"jan@example.com"}, "csrf": {csrf}}, nil, true},
		{"cross-site", url.Values{"email": {"jan@example.com"}, "csrf": {csrf}}, []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, false},
		{"other origin", url.Values{"email": {"jan@example.com"}, "csrf": {csrf}}, []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}, false},
	} {
		c := e.client
		if tc.fresh {
			c = e.newClient()
		}
		resp, body := e.do(c, http.MethodPost, e.url+"/p", tc.form, append([]string{"Sec-Fetch-Site", "same-origin"}, tc.header...)...)
		wantStatus(t, tc.name, resp, body, http.StatusForbidden, "Er is niets veranderd")
	}
	e.h.Close()
	if n := len(e.mail.sent()); n != 0 {
		t.Errorf("%d links mailed", n)
	}
	if n := e.counted("refused"); n != 5 {
		t.Errorf("refused counted: %v", n)
	}
}
