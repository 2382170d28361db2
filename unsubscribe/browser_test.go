package unsubscribe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

// bodyText opens link and returns the page's text.
func bodyText(t *testing.T, ctx context.Context, link string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// A recipient in a real browser: the link shows the page in Dutch to a
// Dutch browser and in English to an English one, opening it changes
// nothing, and the confirm button, pressed from the keyboard, withdraws,
// which the ledger shows.
func TestBrowserUnsubscribe(t *testing.T) {
	if testing.Short() {
		t.Skip("drives chromium")
	}
	p := filePages(t)
	link := p.link("newsletter")

	if body := bodyText(t, testtools.Browser(t, "nl-NL,nl"), link); !strings.Contains(body, "Afmelden bevestigen") {
		t.Errorf("Dutch page: %q", body)
	}
	en := testtools.Browser(t, "en-GB,en")
	if body := bodyText(t, en, link); !strings.Contains(body, "Confirm unsubscribe") {
		t.Errorf("English page: %q", body)
	}
	if !p.decide("newsletter").Allow {
		t.Fatal("opening the page withdrew")
	}

	ctx, cancel := context.WithTimeout(en, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Focus(chromedp.CSS("button[type=submit]")),
		chromedp.KeyEvent("\r"),
	); err != nil {
		t.Fatalf("confirming: %v", err)
	}
	// The answer is a new page.
	testtools.WaitTitle(t, ctx, "You are unsubscribed")
	if p.decide("newsletter").Allow {
		t.Fatal("the button did not withdraw")
	}
	found := false
	for _, e := range p.view().Events {
		if e.Type == optin.EventConsentWithdrawn && e.Actor == "unsubscribe" {
			found = true
		}
	}
	if !found {
		t.Errorf("no withdrawal by unsubscribe in the history")
	}
	if n := p.counted("newsletter", ChannelPage); n != 1 {
		t.Errorf("page unsubscribes counted: %v", n)
	}
}
