package portal_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/xuri/excelize/v2"

	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

// A subject in a real browser: asks for a link at /p, opens it from the
// mail, withdraws a purpose, corrects the address, downloads the XLSX and
// asks for erasure, all with the keyboard.
func TestBrowserPortal(t *testing.T) {
	if testing.Short() {
		t.Skip("drives chromium")
	}
	e := newEnv(t, backends[0].open(t))
	b := testtools.Browser(t, "en-GB,en")
	ctx, cancel := context.WithTimeout(b, 2*time.Minute)
	defer cancel()

	// Ask for a link.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/p"), chromedp.SendKeys(chromedp.CSS("#email"), "Jan@Example.com")); err != nil {
		t.Fatal(err)
	}
	testtools.KeyPress(t, ctx, `button[type=submit]`)
	testtools.WaitTitle(t, ctx, "Check your mailbox")
	mail := e.mail.next(t)
	if mail.to != e.jan || mail.lang != "en" {
		t.Fatalf("mailed %+v", mail)
	}

	// Open it, and stop the newsletter.
	if err := chromedp.Do(ctx, chromedp.Navigate(mail.link)); err != nil {
		t.Fatal(err)
	}
	testtools.WaitTitle(t, ctx, "Your data")
	testtools.KeyPress(t, ctx, `section[aria-labelledby="purpose-newsletter"] button`)
	testtools.WaitText(t, ctx, "Saved: you will no longer get Onze maandelijkse nieuwsbrief.")
	c := e.consent(e.jan, "newsletter")
	if c == nil || c.Status != optin.StatusWithdrawn || c.Source != optin.SourcePortal {
		t.Fatalf("newsletter record %+v", c)
	}
	ev := evidenceOf(t, e, e.jan, c.EventID)
	if ev.IP != "127.0.0.1" || !strings.Contains(ev.UserAgent, "Chrome") || ev.Text != "Stop sending me this: Onze maandelijkse nieuwsbrief" {
		t.Errorf("evidence %+v", ev)
	}

	// Correct the address.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#new-email"), "jan@new.example"),
		chromedp.SendKeys(chromedp.CSS("#new-email-again"), "jan@new.example"),
	); err != nil {
		t.Fatal(err)
	}
	testtools.KeyPress(t, ctx, `section[aria-labelledby="address-title"] button`)
	testtools.WaitText(t, ctx, "Your email address was changed.")
	testtools.WaitText(t, ctx, "This is what we keep about jan@new.example")
	moved := address(t, "jan@new.example")
	if !updated(t, e, e.jan, "new_email", "subject") || !updated(t, e, moved, "old_email", "subject") {
		t.Errorf("no subject.updated on both addresses")
	}

	// Download the XLSX.
	dir := t.TempDir()
	file := testtools.Download(t, ctx, `a[href$="format=xlsx"]`, dir)
	f, err := excelize.OpenFile(file)
	if err != nil {
		t.Fatalf("the downloaded XLSX does not open: %v", err)
	}
	if v, _ := f.GetCellValue("Subject", "A2"); v != "jan@new.example" {
		t.Errorf("the XLSX is of %q", v)
	}
	rows, _ := f.GetRows("Events")
	f.Close()
	os.Remove(file)
	if len(rows) < 3 {
		t.Errorf("the XLSX holds %d event rows", len(rows)-1)
	}

	// Ask for erasure: the box, then the button.
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#erasure-confirm")), chromedp.KeyEvent(" ")); err != nil {
		t.Fatal(err)
	}
	testtools.KeyPress(t, ctx, "button.danger")
	testtools.WaitTitle(t, ctx, "Your data has been erased")
	if calls := e.eraser.called(); len(calls) != 1 || calls[0] != "jan@new.example by subject" {
		t.Errorf("eraser calls %v", calls)
	}
}

func evidenceOf(t *testing.T, e *env, a optin.Address, eventID string) optin.Evidence {
	t.Helper()
	for _, x := range e.view(a).Events {
		if x.ID == eventID {
			if ev := optin.EvidenceOf(x); ev != nil {
				return *ev
			}
		}
	}
	t.Fatalf("no evidence in event %s", eventID)
	return optin.Evidence{}
}

// Every control of the portal is reached with Tab, in the page's order.
func TestBrowserKeyboard(t *testing.T) {
	if testing.Short() {
		t.Skip("drives chromium")
	}
	e := newEnv(t, backends[0].open(t))
	ctx, cancel := context.WithTimeout(testtools.Browser(t, "nl-NL,nl"), time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.link(e.jan))); err != nil {
		t.Fatal(err)
	}
	testtools.WaitTitle(t, ctx, "Uw gegevens")
	// Each control named by its place among the page's controls.
	const controls = `Array.from(document.querySelectorAll('a[href], button, input:not([type=hidden])'))`
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](controls+`.length`))
	if err != nil || n < 10 {
		t.Fatalf("%d controls (%v)", n, err)
	}
	for i := range n {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[int](controls+`.indexOf(document.activeElement)`))
		if err != nil {
			t.Fatal(err)
		}
		if got != i {
			t.Fatalf("Tab %d focuses control %d, want %d", i+1, got, i)
		}
	}
}
