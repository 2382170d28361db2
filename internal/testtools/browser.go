package testtools

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Browser starts a headless Debian chromium (installing it when missing)
// whose requests ask for the languages lang ("en-GB,en"), and returns a
// context that drives it until the test ends.
func Browser(t testing.TB, lang string) context.Context {
	t.Helper()
	bin := Need(t, "chromium", "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // tests may run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("accept-lang", lang),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first run starts the browser, for as long as ctx lives.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// WaitTitle waits, a bounded while, for the page in ctx to have title: a
// form's answer is a new page, which chromedp does not wait for.
func WaitTitle(t testing.TB, ctx context.Context, title string) {
	t.Helper()
	var got string
	for range 100 {
		if got, _ = chromedp.Run(ctx, chromedp.Title()); got == title {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("the page's title is %q, want %q; page: %q", got, title, body)
}

// WaitText waits, a bounded while, for the page in ctx to show text, and
// returns the page's text.
func WaitText(t testing.TB, ctx context.Context, text string) string {
	t.Helper()
	var body string
	for range 100 {
		if body, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); strings.Contains(body, text) {
			return body
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the page does not show %q: %q", text, body)
	return ""
}

// KeyPress focuses sel and presses Enter on it, as a keyboard user does.
func KeyPress(t testing.TB, ctx context.Context, sel string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatalf("pressing %s: %v", sel, err)
	}
}

// Download presses the link sel, lets the browser save what it leads to
// in dir, and returns the file's path.
func Download(t testing.TB, ctx context.Context, sel, dir string) string {
	t.Helper()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		yes := true
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	KeyPress(t, ctx, sel)
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("waiting for the download: %v", err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			return filepath.Join(dir, ev.GUID)
		case browser.DownloadProgressStateCanceled:
			t.Fatal("the download was cancelled")
		}
	}
	t.Fatal("no download")
	return ""
}
