package portal_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

// TestScreenshots writes PNG screenshots of the request form and of a
// portal, 800 pixels wide, into the folder OPTINPROXY_SCREENSHOTS names
// (docs/screenshots in the repository):
//
//	OPTINPROXY_SCREENSHOTS=$PWD/docs/screenshots go test -run TestScreenshots ./portal
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("OPTINPROXY_SCREENSHOTS")
	if dir == "" {
		t.Skip("OPTINPROXY_SCREENSHOTS is not set")
	}
	e := newEnv(t, backends[0].open(t))
	bg := context.Background()
	// A subject with some history: a grant (newEnv's), an unsubscribe,
	// a double opt-in waiting, and two newsletters received.
	if _, err := e.ledger.Withdraw(bg, e.jan, "offers", optin.ConsentChange{Source: optin.SourceUnsubscribe, Actor: "unsubscribe"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ledger.Grant(bg, e.jan, "events", optin.ConsentChange{Source: optin.SourcePortal, Actor: "subject"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r := optin.Receipt{Subject: e.jan, Purpose: "newsletter", Actor: "smtp:crm", Time: time.Now().Add(time.Duration(i) * time.Second),
			Decision: optin.Decision{Allow: true, Reason: optin.ReasonConsent}, Relayed: true,
			Details: optin.ReceiptDetails{MessageID: "<news-" + string(rune('1'+i)) + "@crm.example>"}}
		if _, err := e.ledger.Apply(bg, []optin.Change{r.Change()}); err != nil {
			t.Fatal(err)
		}
	}
	// In Dutch, the pages' default and the language of the test's
	// purpose descriptions.
	ctx, cancel := context.WithTimeout(testtools.Browser(t, "nl-NL,nl"), time.Minute)
	defer cancel()
	for name, link := range map[string]string{
		"portal-request.png": e.url + "/p",
		"portal.png":         e.link(e.jan) + "?notice=withdrawn&purpose=offers",
	} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(800, 600), chromedp.Navigate(link)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", name, len(png))
	}
}
