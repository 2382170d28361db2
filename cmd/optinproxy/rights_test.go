package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-smtp"
	"github.com/xuri/excelize/v2"

	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

// apiSubject is GET /api/v1/subjects/{email} as the tests read it.
type apiSubject struct {
	Email    string
	Erased   bool
	Consents []struct {
		Purpose, Status, Source string
		Evidence                map[string]any
	}
	Suppressions []struct{ Reason string }
	Events       []apiEvent
}

type apiEvent struct {
	Type, Purpose, Actor string
	Details              map[string]any
}

func (v apiSubject) status(purpose string) (status, source string) {
	for _, c := range v.Consents {
		if c.Purpose == purpose {
			return c.Status, c.Source
		}
	}
	return "", ""
}

func (v apiSubject) hasEvent(typ, purpose string) bool {
	return slices.ContainsFunc(v.Events, func(e apiEvent) bool { return e.Type == typ && e.Purpose == purpose })
}

// subject reads email through the admin API.
func (d *doiServer) subject(t *testing.T, email string) apiSubject {
	t.Helper()
	var v apiSubject
	d.api(t, "GET", "/api/v1/subjects/"+url.PathEscape(email), "", "", &v)
	return v
}

// TestBrowserRightsWalk is a recipient using their rights in a real
// browser (Debian's chromium) against the built binary: with consents to
// two marketing purposes, they ask for a link at /p, open it from the
// mail the upstream got, withdraw one purpose (recorded with the
// browser's evidence), correct their address (the new address's portal
// opens, the history stays, subject.updated on both), download the XLSX
// and ask for erasure. Afterwards the relay refuses marketing to the
// address in an SMTP conversation, and /p mails it nothing.
func TestBrowserRightsWalk(t *testing.T) {
	if testing.Short() {
		t.Skip("drives chromium")
	}
	dir := t.TempDir()
	d := startPublic(t, dir, `purposes:
  newsletter: {basis: consent, category: marketing, retention: 730d, description: "Our monthly newsletter"}
  offers: {basis: consent, category: marketing, retention: 365d, description: "Offers and discounts"}
  transactional: {basis: contract, category: transactional}
notices:
  from: privacy@shop.example
`)
	s := d.server
	for _, p := range []string{"newsletter", "offers"} {
		d.api(t, "PUT", "/api/v1/subjects/jan%40example.com/consents/"+p, "application/json",
			`{"source": "form", "evidence": {"ip": "192.0.2.7", "text": "Yes, send me `+p+`"}}`, nil)
	}

	ctx, cancel := context.WithTimeout(testtools.Browser(t, "en-GB,en"), 3*time.Minute)
	defer cancel()

	// Ask for a link at /p; it comes by mail, through the upstream.
	if err := chromedp.Do(ctx, chromedp.Navigate(d.base+"/p"), chromedp.SendKeys(chromedp.CSS("#email"), "Jan@Example.com")); err != nil {
		t.Fatal(err)
	}
	testtools.KeyPress(t, ctx, "button[type=submit]")
	testtools.WaitTitle(t, ctx, "Check your mailbox")
	subject, text, link := mailedLink(t, dir, "jan@example.com")
	if subject != "Your link to your data" || !strings.HasPrefix(link, d.base+"/p/") || !strings.Contains(text, "If you do nothing, nothing happens") {
		t.Fatalf("the portal mail %q, link %q:\n%s", subject, link, text)
	}

	// Open it and stop the newsletter.
	if err := chromedp.Do(ctx, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	testtools.WaitTitle(t, ctx, "Your data")
	body := testtools.WaitText(t, ctx, "This is what we keep about jan@example.com")
	for _, want := range []string{"Our monthly newsletter", "Offers and discounts", "You agreed"} {
		if !strings.Contains(body, want) {
			t.Errorf("the portal lacks %q: %q", want, body)
		}
	}
	testtools.KeyPress(t, ctx, `section[aria-labelledby="purpose-newsletter"] button`)
	testtools.WaitText(t, ctx, "Saved: you will no longer get Our monthly newsletter.")
	jan := d.subject(t, "jan@example.com")
	var withdrawn map[string]any
	for _, c := range jan.Consents {
		if c.Purpose == "newsletter" && c.Status == "withdrawn" && c.Source == "portal" {
			withdrawn = c.Evidence
		}
	}
	if withdrawn == nil || withdrawn["ip"] != "127.0.0.1" || !strings.Contains(withdrawn["user_agent"].(string), "Chrome") ||
		withdrawn["text"] != "Stop sending me this: Our monthly newsletter" || withdrawn["time"] == nil {
		t.Errorf("after the withdrawal: %+v", jan.Consents)
	}
	if st, _ := jan.status("offers"); st != "granted" {
		t.Errorf("offers %q after withdrawing the newsletter", st)
	}

	// Correct the address: the new address's portal opens.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#new-email"), "jan@new.example"),
		chromedp.SendKeys(chromedp.CSS("#new-email-again"), "jan@new.example"),
	); err != nil {
		t.Fatal(err)
	}
	testtools.KeyPress(t, ctx, `section[aria-labelledby="address-title"] button`)
	testtools.WaitText(t, ctx, "Your email address was changed.")
	body = testtools.WaitText(t, ctx, "This is what we keep about jan@new.example")
	if !strings.Contains(body, "Address changed from jan@example.com") {
		t.Errorf("the new portal does not show the change: %q", body)
	}
	old, moved := d.subject(t, "jan@example.com"), d.subject(t, "jan@new.example")
	// The old address keeps its history and sends nothing more; the new
	// one holds the records as they were.
	for _, want := range []struct{ typ, purpose string }{
		{"consent.granted", "newsletter"}, {"consent.granted", "offers"}, {"consent.withdrawn", "newsletter"}, {"subject.updated", ""},
	} {
		if !old.hasEvent(want.typ, want.purpose) {
			t.Errorf("the old address's history lacks %s %s: %+v", want.typ, want.purpose, old.Events)
		}
	}
	if st, src := old.status("offers"); st != "withdrawn" || src != "moved" {
		t.Errorf("offers on the old address: %s from %s", st, src)
	}
	if st, _ := moved.status("offers"); st != "granted" {
		t.Errorf("offers on the new address: %q", st)
	}
	if st, src := moved.status("newsletter"); st != "withdrawn" || src != "portal" {
		t.Errorf("the newsletter on the new address: %s from %s", st, src)
	}
	updated := func(v apiSubject, key, email string) bool {
		for _, e := range v.Events {
			if e.Type == "subject.updated" && e.Details[key] == email && e.Actor == "subject" {
				return true
			}
		}
		return false
	}
	if !updated(old, "new_email", "jan@new.example") || !updated(moved, "old_email", "jan@example.com") {
		t.Errorf("subject.updated missing: old %+v, new %+v", old.Events, moved.Events)
	}
	if resp, err := http.Get(link); err != nil || resp.StatusCode != http.StatusGone {
		t.Errorf("the old link after the move: %v %v", resp.Status, err)
	} else {
		resp.Body.Close()
	}

	// Download the XLSX: it opens, and holds the consents.
	file := testtools.Download(t, ctx, `a[href$="format=xlsx"]`, t.TempDir())
	x, err := excelize.OpenFile(file)
	if err != nil {
		t.Fatalf("the downloaded XLSX does not open: %v", err)
	}
	if v, _ := x.GetCellValue("Subject", "A2"); v != "jan@new.example" {
		t.Errorf("the XLSX is of %q", v)
	}
	rows, err := x.GetRows("Consents")
	x.Close()
	if err != nil || len(rows) != 3 || !slices.Equal(rows[0][:4], []string{"purpose", "status", "basis", "source"}) {
		t.Fatalf("the XLSX's consents: %q %v", rows, err)
	}
	got := map[string]string{}
	for _, r := range rows[1:] {
		got[r[0]] = r[1]
	}
	if got["newsletter"] != "withdrawn" || got["offers"] != "granted" {
		t.Errorf("the XLSX's consents: %q", rows)
	}

	// Ask for erasure: the box, then the button.
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#erasure-confirm")), chromedp.KeyEvent(" ")); err != nil {
		t.Fatal(err)
	}
	testtools.KeyPress(t, ctx, "button.danger")
	testtools.WaitTitle(t, ctx, "Your data has been erased")
	erased := d.subject(t, "jan@new.example")
	if !erased.Erased || len(erased.Consents) != 0 || len(erased.Suppressions) != 1 || erased.Suppressions[0].Reason != "erased" ||
		!erased.hasEvent("subject.erased", "") {
		t.Errorf("after the erasure: %+v", erased)
	}

	// The relay refuses marketing to the address, in a real SMTP
	// conversation; transactional mail is refused too.
	for _, purpose := range []string{"offers", "transactional"} {
		c, err := smtp.Dial(s.smtpAddr)
		if err != nil {
			t.Fatal(err)
		}
		msg := "From: crm@shop.example\r\nTo: jan@new.example\r\nSubject: Spring\r\nX-Optin-Purpose: " + purpose + "\r\n\r\nHello Jan\r\n"
		err = c.SendMail("crm@shop.example", []string{"jan@new.example"}, strings.NewReader(msg))
		c.Close()
		if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 550 || !strings.Contains(se.Message, "suppressed:erased") {
			t.Errorf("%s to the erased address: %v, want 550 suppressed:erased", purpose, err)
		}
	}
	if n := len(mailsTo(t, dir, "jan@new.example")); n != 0 {
		t.Errorf("%d mails went to the erased address", n)
	}

	// /p answers as for any address, and mails the erased one nothing:
	// the log says so, by the address's hash.
	buffered(s.logs) // room for the lines to come
	if err := chromedp.Do(ctx, chromedp.Navigate(d.base+"/p"), chromedp.SendKeys(chromedp.CSS("#email"), "jan@new.example")); err != nil {
		t.Fatal(err)
	}
	testtools.KeyPress(t, ctx, "button[type=submit]")
	testtools.WaitTitle(t, ctx, "Check your mailbox")
	line := s.logs.waitFor(t, "portal link not sent: erased", 15*time.Second)
	if a, _ := optin.ParseAddress("jan@new.example"); line["subject"] != a.Hash() {
		t.Errorf("the log line names %v", line["subject"])
	}
	if n := len(mailsTo(t, dir, "jan@new.example")); n != 0 {
		t.Errorf("/p mailed the erased address %d times", n)
	}
	if b, _ := json.Marshal(line); strings.Contains(string(b), "jan@") {
		t.Errorf("the log line holds the address: %s", b)
	}
}
