package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// portal-link prints a link the running server made; it opens the
// subject's portal on the server's listener, where /p takes requests too.
func TestPortalLinkCommand(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)
	cli := cliOf(t, dir, s)
	if r := cli("consent", "grant", "jan@example.com", "newsletter"); r.code != 0 {
		t.Fatalf("grant: %d %s", r.code, r.stderr)
	}
	r := cli("portal-link", "Jan@Example.com")
	link, err := url.Parse(strings.TrimSpace(r.stdout))
	if r.code != 0 || err != nil || !strings.HasPrefix(link.Path, "/p/") || link.Host != "127.0.0.1:8080" {
		t.Fatalf("portal-link: %d %q %s", r.code, r.stdout, r.stderr)
	}
	// The link is under http.public_url; the test's server listens
	// elsewhere.
	for path, want := range map[string]string{link.Path: "Dit bewaren wij over jan@example.com", "/p": "Stuur mij een link"} {
		resp, err := http.Get("http://" + s.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want %q:\n%s", path, resp.StatusCode, want, body)
		}
	}
	if r := cli("portal-link", "nobody@example.com"); r.code != 1 || !strings.Contains(r.stderr, "not_found") {
		t.Errorf("unknown subject: %d %q", r.code, r.stderr)
	}
	if r := cli("portal-link"); r.code != 2 {
		t.Errorf("no address: exit %d, want 2", r.code)
	}
}
