package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"optinproxy/internal/testtools"
)

// A recipient opens the link of a relayed newsletter in a real browser
// (Debian's chromium), reads the page in English, confirms from the
// keyboard, and the next newsletter to that address is refused.
func TestBrowserUnsubscribeFromRelayedMail(t *testing.T) {
	if testing.Short() {
		t.Skip("drives chromium")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	s := startServe(t, dir, "OPTINPROXY_HTTP_LISTEN="+addr, "OPTINPROXY_HTTP_PUBLIC_URL=http://"+addr)
	if r := runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr}, "consent", "grant", "jan@example.com", "newsletter", "--source", "form"); r.code != 0 {
		t.Fatalf("grant: %s%s", r.stdout, r.stderr)
	}
	newsletter := []string{"--header", "X-Optin-Purpose: newsletter", "--body", "Beste Jan"}
	if code, out := swaksSend(t, s.smtpAddr, "jan@example.com", newsletter...); code != 0 {
		t.Fatalf("newsletter: %d\n%s", code, out)
	}
	_, m := onlyCopy(t, dir)
	link := strings.Trim(m.Header.Get("List-Unsubscribe"), "<>")

	ctx, cancel := context.WithTimeout(testtools.Browser(t, "en-GB,en"), 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil || !strings.Contains(body, "Confirm unsubscribe") || !strings.Contains(body, "Our monthly newsletter") {
		t.Fatalf("page: %q %v", body, err)
	}
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("button[type=submit]")), chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	testtools.WaitTitle(t, ctx, "You are unsubscribed")
	code, out := swaksSend(t, s.smtpAddr, "jan@example.com", newsletter...)
	if code == 0 || !strings.Contains(out, "withdrawn") {
		t.Fatalf("newsletter after unsubscribing: %d\n%s", code, out)
	}
}
