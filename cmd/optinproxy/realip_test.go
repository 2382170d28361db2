package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Behind a trusted reverse proxy the client that X-Forwarded-For names is
// the IP recorded as the unsubscribe's evidence; from an untrusted peer
// the header is ignored, so a client cannot put words in the ledger.
func TestEvidenceBehindProxy(t *testing.T) {
	cases := []struct {
		name, trusted, xff, want string
	}{
		{"trusted proxy", "127.0.0.1", "198.51.100.7, 203.0.113.9", `"ip":"203.0.113.9"`},
		{"chain of proxies", "127.0.0.1,10.0.0.0/8", "198.51.100.7, 203.0.113.9, 10.1.2.3", `"ip":"203.0.113.9"`},
		{"untrusted peer", "10.0.0.0/8", "203.0.113.9", `"ip":"127.0.0.1"`},
		{"garbage header", "127.0.0.1", "203.0.113.9, not-an-ip", `"ip":"127.0.0.1"`},
		{"address with a port", "127.0.0.1", "198.51.100.7, 203.0.113.9:52100", `"ip":"203.0.113.9"`},
		{"IPv6 with a port", "127.0.0.1", "[2001:db8::9]:443", `"ip":"2001:db8::9"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			addr := freeAddr(t)
			public := "OPTINPROXY_HTTP_PUBLIC_URL=http://" + addr + "/"
			s := startServe(t, dir, "OPTINPROXY_HTTP_LISTEN="+addr, public, "OPTINPROXY_HTTP_TRUSTED_PROXIES=["+c.trusted+"]")
			cli := func(args ...string) result {
				return runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr, public}, args...)
			}
			link := strings.TrimSpace(cli("unsubscribe-url", "jan@example.com", "--purpose", "newsletter").stdout)
			req, err := http.NewRequest("POST", link, strings.NewReader(url.Values{"List-Unsubscribe": {"One-Click"}}.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-For", c.xff)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("one-click POST: %d", resp.StatusCode)
			}
			if r := cli("consent", "show", "jan@example.com"); !strings.Contains(r.stdout, c.want) {
				t.Errorf("evidence lacks %s:\n%s%s", c.want, r.stdout, r.stderr)
			}
		})
	}
}

// The portal's per-client limit on link requests (20 an hour) counts the
// client a trusted reverse proxy names: behind one proxy, one client over
// its limit does not shut out another. Without trusted_proxies every
// request counts as the proxy's, so the second client is limited too.
func TestPortalLimitBehindProxy(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(fmt.Sprint("trusted=", trusted), func(t *testing.T) {
			env := []string{}
			if trusted {
				env = append(env, "OPTINPROXY_HTTP_TRUSTED_PROXIES=127.0.0.1")
			}
			s := startServe(t, t.TempDir(), env...)
			target, err := url.Parse("http://" + s.httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			// front is a reverse proxy that names client in
			// X-Forwarded-For, as nginx's $remote_addr would.
			front := func(client string) string {
				p := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
					r.SetURL(target)
					r.Out.Header.Set("X-Forwarded-For", client)
				}}
				srv := httptest.NewServer(p)
				t.Cleanup(srv.Close)
				return srv.URL
			}
			ask := func(base, email string) int {
				t.Helper()
				jar, _ := cookiejar.New(nil)
				c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				resp, err := c.Get(base + "/p")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
				if m == nil {
					t.Fatalf("GET /p: %d, no CSRF token", resp.StatusCode)
				}
				req, _ := http.NewRequest("POST", base+"/p", strings.NewReader(url.Values{"csrf": {string(m[1])}, "email": {email}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
				resp, err = c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			a, b := front("203.0.113.1"), front("203.0.113.2")
			for i := range 20 {
				if code := ask(a, fmt.Sprintf("a%d@example.com", i)); code != http.StatusSeeOther {
					t.Fatalf("request %d of client A: %d, want 303", i+1, code)
				}
			}
			if code := ask(a, "a20@example.com"); code != http.StatusTooManyRequests {
				t.Errorf("21st request of client A: %d, want 429", code)
			}
			want := http.StatusSeeOther
			if !trusted {
				want = http.StatusTooManyRequests
			}
			if code := ask(b, "b@example.com"); code != want {
				t.Errorf("first request of client B: %d, want %d", code, want)
			}
		})
	}
}
