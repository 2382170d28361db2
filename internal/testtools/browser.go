package testtools

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
