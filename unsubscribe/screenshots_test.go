package unsubscribe

import (
	"bytes"
	"context"
	"image/png"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"optinproxy/internal/teststore"
	"optinproxy/internal/testtools"
)

// screenshotWidth is the width of the screenshots in docs/screenshots:
// a narrow desktop window, small files.
const screenshotWidth = 800

// TestScreenshots walks the unsubscribe and the confirmation page in a
// real browser, in English, and shoots each before and after its
// button: each is a PNG of the page as a recipient sees it. With
// OPTINPROXY_SCREENSHOTS=DIR they are written to DIR (scripts/screenshots
// writes docs/screenshots).
func TestScreenshots(t *testing.T) {
	if testing.Short() {
		t.Skip("drives chromium")
	}
	dir := os.Getenv("OPTINPROXY_SCREENSHOTS")
	// The purpose as the default configuration describes it, in English
	// like the pages shot.
	purposes := maps.Clone(doiPurposes)
	newsletter := purposes["newsletter"]
	newsletter.Description = "Our monthly newsletter"
	purposes["newsletter"] = newsletter
	c := newConfirmPagesWith(t, teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db")), purposes)
	unsubscribeLink := c.srv.URL + "/u/" + c.tokens.Issue(Claim{Subject: c.jan, Purpose: "newsletter", Issued: time.Now()})
	ctx, cancel := context.WithTimeout(testtools.Browser(t, "en-GB,en"), 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(screenshotWidth, 560)); err != nil {
		t.Fatal(err)
	}
	for _, walk := range []struct {
		link, ask, done string
		shots           [2]string
	}{
		{c.confirmLink("newsletter"), "Confirm your subscription", "Your subscription is confirmed", [2]string{"confirm-ask.png", "confirm-done.png"}},
		{unsubscribeLink, "Unsubscribe", "You are unsubscribed", [2]string{"unsubscribe-ask.png", "unsubscribe-done.png"}},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(walk.link)); err != nil {
			t.Fatal(err)
		}
		testtools.WaitTitle(t, ctx, walk.ask)
		shoot(t, ctx, dir, walk.shots[0])
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("button[type=submit]"))); err != nil {
			t.Fatal(err)
		}
		testtools.WaitTitle(t, ctx, walk.done)
		shoot(t, ctx, dir, walk.shots[1])
	}
}

// shoot takes a PNG of the page, checks that it is one of the width
// asked for, and writes it to dir/name when dir is set.
func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if w := img.Bounds().Dx(); w != screenshotWidth {
		t.Errorf("%s is %d pixels wide, want %d", name, w, screenshotWidth)
	}
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", filepath.Join(dir, name), len(b))
}
