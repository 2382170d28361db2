package main

import (
	"net/http"
	"net/url"
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
