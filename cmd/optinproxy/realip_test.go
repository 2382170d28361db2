package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"optinproxy/config"
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

// The attacker's and the operator's X-Forwarded-For, over real HTTP: the
// client seen behind the proxies for forged, long, huge, IPv6, IPv4-mapped
// and zoned hops, several header lines, and none.
func TestForwardedForAttacks(t *testing.T) {
	hops := func(n int, hop string) string { return strings.Repeat(hop+", ", n) }
	cases := []struct {
		name, trusted string
		xff           []string
		want          string
	}{
		{"no header", "127.0.0.1", nil, "127.0.0.1"},
		{"empty header", "127.0.0.1", []string{""}, "127.0.0.1"},
		{"untrusted peer forges", "10.0.0.0/8", []string{"203.0.113.9"}, "127.0.0.1"},
		{"forged hops left of the client", "127.0.0.1", []string{"6.6.6.6, 127.0.0.1, 203.0.113.9"}, "203.0.113.9"},
		{"every hop trusted", "127.0.0.1,10.0.0.0/8", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"hundreds of trusted hops", "127.0.0.1,10.0.0.0/8", []string{"203.0.113.9, " + hops(500, "10.9.8.7") + "10.0.0.1"}, "203.0.113.9"},
		{"hundreds of forged hops", "127.0.0.1", []string{hops(500, "6.6.6.6") + "203.0.113.9"}, "203.0.113.9"},
		{"two header lines", "127.0.0.1,10.0.0.0/8", []string{"6.6.6.6", "203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
		{"IPv6 client", "127.0.0.1", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4-mapped client", "127.0.0.1", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"IPv4-mapped proxy in the configuration", "127.0.0.1,::ffff:10.0.0.0/104", []string{"203.0.113.9, 10.1.2.3"}, "203.0.113.9"},
		{"IPv4-mapped proxy hop", "127.0.0.1,10.0.0.0/8", []string{"203.0.113.9, ::ffff:10.1.2.3"}, "203.0.113.9"},
		{"zoned proxy hop", "127.0.0.1,fe80::/10", []string{"203.0.113.9, fe80::1%eth0"}, "203.0.113.9"},
		{"zoned client", "127.0.0.1", []string{"fe80::9%eth0"}, "fe80::9"},
		{"hop with a port", "127.0.0.1", []string{"203.0.113.9:4711"}, "203.0.113.9"},
		{"hop that is no address", "127.0.0.1", []string{"203.0.113.9, unknown"}, "127.0.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, got := seenBehind(t, c.trusted, c.xff)
			if code != 200 || got != c.want {
				t.Errorf("X-Forwarded-For %.80q: status %d, client %s, want %s", c.xff, code, got, c.want)
			}
		})
	}
	// A proxy that reaches the server over IPv6.
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Logf("no IPv6 loopback: %v", err)
	} else {
		srv := httptest.NewUnstartedServer(behindProxies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.RemoteAddr)
		}), config.HTTP{TrustedProxies: []string{"::1"}}.TrustedProxyPrefixes()))
		srv.Listener.Close()
		srv.Listener = l
		srv.Start()
		defer srv.Close()
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("X-Forwarded-For", "6.6.6.6, 2001:db8::7")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "[2001:db8::7]:0" {
			t.Errorf("behind a proxy at ::1: client %s, want [2001:db8::7]:0", body)
		}
	}
	// A header past the server's limit is refused before any handler.
	if code, got := seenBehind(t, "127.0.0.1", []string{hops(200_000, "10.0.0.1")}); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("2 MB of hops: status %d, client %q, want 431", code, got)
	}
}

// seenBehind serves behindProxies over loopback and returns the status
// and the client address the handler saw for a request with xff.
func seenBehind(t *testing.T, trusted string, xff []string) (int, string) {
	t.Helper()
	prefixes := config.HTTP{TrustedProxies: strings.Split(trusted, ",")}.TrustedProxyPrefixes()
	srv := httptest.NewServer(behindProxies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(w, host)
	}), prefixes))
	defer srv.Close()
	req, err := http.NewRequest("GET", srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Reading a header of a megabyte of trusted hops costs what the header
// costs, not a slice many times its size.
func TestForwardedForMemory(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	h := behindProxies(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), trusted)
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "127.0.0.1:4711"
	req.Header.Set("X-Forwarded-For", strings.Repeat("10.0.0.1,", 1<<20/9))
	least := ^uint64(0)
	for range 3 { // the least of three: other goroutines of the package may allocate meanwhile
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h.ServeHTTP(httptest.NewRecorder(), req)
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	if least > 64<<10 {
		t.Errorf("a header of 1 MiB of hops allocated %d bytes", least)
	}
}
