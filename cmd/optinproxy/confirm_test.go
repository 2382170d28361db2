package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-message/mail"

	"optinproxy/internal/testtools"
)

// doiServer is a proxy whose newsletter asks for double opt-in, with
// the file upstream under dir/data/outbox and its public URL at addr.
type doiServer struct {
	*server
	base  string // http://addr
	token string // the generated admin token
}

// startPublic writes config to dir/optinproxy.yaml and starts the server
// there, its HTTP listener on a free address that is also its public URL.
func startPublic(t *testing.T, dir, config string) *doiServer {
	t.Helper()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "optinproxy.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, "OPTINPROXY_CONFIG="+cfg, "OPTINPROXY_HTTP_LISTEN="+addr, "OPTINPROXY_HTTP_PUBLIC_URL=http://"+addr)
	token, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return &doiServer{server: s, base: "http://" + addr, token: strings.TrimSpace(string(token))}
}

func startDOI(t *testing.T, dir string) *doiServer {
	t.Helper()
	d := startPublic(t, dir, `purposes:
  newsletter: {basis: consent, category: marketing, retention: 730d, double_opt_in: true, description: "Our monthly newsletter"}
notices:
  from: privacy@shop.example
  reply_to: dpo@shop.example
`)
	// A new outbox target starts at the outbox's end: a sign-up before it
	// took its place would not be mailed. Its gauge shows it has.
	waitUntil(t, "the confirmations target at work", func() bool {
		resp, err := http.Get("http://" + d.httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return bytes.Contains(b, []byte(`optinproxy_outbox_pending{target="confirmations"}`))
	})
	return d
}

// api calls the admin API and decodes its JSON answer into out.
func (d *doiServer) api(t *testing.T, method, path, contentType, body string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, d.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
}

// signUp records a sign-up from a form through the API and returns the
// pending event's id.
func (d *doiServer) signUp(t *testing.T, email, evidence string) string {
	t.Helper()
	var ans struct {
		Consent struct{ Status string }
		Event   struct{ ID string }
	}
	d.api(t, "PUT", "/api/v1/subjects/"+url.PathEscape(email)+"/consents/newsletter", "application/json",
		`{"source": "form", "evidence": `+evidence+`}`, &ans)
	if ans.Consent.Status != "pending" || ans.Event.ID == "" {
		t.Fatalf("sign-up of %s: %+v, want pending", email, ans)
	}
	return ans.Event.ID
}

// consent reads email's newsletter record from the API.
func (d *doiServer) consent(t *testing.T, email string) map[string]any {
	t.Helper()
	var v struct{ Consents []map[string]any }
	d.api(t, "GET", "/api/v1/subjects/"+url.PathEscape(email), "", "", &v)
	for _, c := range v.Consents {
		if c["purpose"] == "newsletter" {
			return c
		}
	}
	t.Fatalf("%s has no newsletter record: %+v", email, v)
	return nil
}

// mailsTo reads the messages in the upstream's folder whose envelope
// goes to rcpt.
func mailsTo(t *testing.T, dir, rcpt string) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "data/outbox/*.eml"))
	var out [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("X-Optinproxy-Envelope-To: <"+rcpt+">\r\n")) {
			for bytes.HasPrefix(raw, []byte("X-Optinproxy-Envelope-")) {
				raw = raw[bytes.Index(raw, []byte("\r\n"))+2:]
			}
			out = append(out, raw)
		}
	}
	return out
}

// mailedLink waits for the one mail the proxy sent rcpt of its own (a
// confirmation, a portal link) and returns its subject, its text part and
// the link in it.
func mailedLink(t *testing.T, dir, rcpt string) (subject, text, link string) {
	t.Helper()
	waitUntil(t, "the mail to "+rcpt, func() bool { return len(mailsTo(t, dir, rcpt)) > 0 })
	mails := mailsTo(t, dir, rcpt)
	if len(mails) != 1 {
		t.Fatalf("%d mails to %s, want 1", len(mails), rcpt)
	}
	r, err := mail.CreateReader(bytes.NewReader(mails[0]))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ = r.Header.Subject()
	if from, _ := r.Header.AddressList("From"); len(from) != 1 || from[0].Address != "privacy@shop.example" || r.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("From %v, Auto-Submitted %q", from, r.Header.Get("Auto-Submitted"))
	}
	for {
		p, err := r.NextPart()
		if err != nil {
			break
		}
		if typ, _, _ := p.Header.(*mail.InlineHeader).ContentType(); typ == "text/plain" {
			b, _ := io.ReadAll(p.Body)
			text = string(b)
		}
	}
	for line := range strings.Lines(text) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "http://") {
			link = line
		}
	}
	if link == "" {
		t.Fatalf("no link in the mail:\n%s", text)
	}
	return subject, text, link
}

// TestDoubleOptInEndToEnd: a form's sign-up through the API is pending
// and the relay holds marketing back; the confirmation arrives through
// the upstream; its link's page changes nothing until its button is
// pressed, which grants with the evidence; the relay then lets the
// newsletter through. A second press changes nothing, and a pending row
// of an import gets no mail.
func TestDoubleOptInEndToEnd(t *testing.T) {
	dir := t.TempDir()
	d := startDOI(t, dir)
	newsletter := []string{"--header", "X-Optin-Purpose: newsletter", "--body", "Beste Jan"}

	pending := d.signUp(t, "Jan@Example.com", `{"ip": "192.0.2.7", "text": "Yes, send me the newsletter"}`)
	if code, out := swaksSend(t, d.smtpAddr, "jan@example.com", newsletter...); code == 0 || !strings.Contains(out, "pending_confirmation") {
		t.Fatalf("newsletter before the confirmation: %d\n%s", code, out)
	}
	subject, text, link := mailedLink(t, dir, "jan@example.com")
	if subject != "Bevestig uw aanmelding: Our monthly newsletter" || !strings.HasPrefix(link, d.base+"/confirm/") ||
		!strings.Contains(text, "Doet u niets, dan gebeurt er niets") {
		t.Errorf("confirmation %q, link %q:\n%s", subject, link, text)
	}

	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("Our monthly newsletter")) || !bytes.Contains(page, []byte("Aanmelding bevestigen")) {
		t.Fatalf("GET %s: %d\n%s", link, resp.StatusCode, page)
	}
	if c := d.consent(t, "jan@example.com"); c["status"] != "pending" {
		t.Fatalf("GET changed the record: %v", c)
	}

	browser := http.Header{"User-Agent": {"JanBrowser/1.0"}}
	if code, body := post(t, link, "", nil, browser); code != 200 || !strings.Contains(body, "Uw aanmelding is bevestigd") {
		t.Fatalf("POST: %d\n%s", code, body)
	}
	c := d.consent(t, "jan@example.com")
	ev, _ := c["evidence"].(map[string]any)
	if c["status"] != "granted" || c["source"] != "double_opt_in" || c["granted_at"] == nil || ev == nil ||
		ev["ip"] != "127.0.0.1" || ev["user_agent"] != "JanBrowser/1.0" || ev["policy_version"] != "2026-01" ||
		ev["pending_event"] != pending || ev["time"] == nil {
		t.Errorf("record after confirming: %v", c)
	}
	if code, out := swaksSend(t, d.smtpAddr, "jan@example.com", newsletter...); code != 0 || !strings.Contains(out, "relayed 1, blocked 0") {
		t.Errorf("newsletter after the confirmation: %d\n%s", code, out)
	}
	if code, body := post(t, link, "", nil, browser); code != 200 || !strings.Contains(body, "U was al aangemeld") {
		t.Errorf("second POST: %d\n%s", code, body)
	}
	var events struct{ Events []struct{ Type string } }
	d.api(t, "GET", "/api/v1/events?subject=jan%40example.com", "", "", &events)
	granted := 0
	for _, e := range events.Events {
		if e.Type == "consent.granted" {
			granted++
		}
	}
	if granted != 1 {
		t.Errorf("%d consent.granted events, want 1: %+v", granted, events.Events)
	}
	if v := metric(t, d.server, `optinproxy_confirmations_total{purpose="newsletter"}`); v != 1 {
		t.Errorf("confirmations counted: %v", v)
	}

	// An import of a pending row: recorded, not mailed. Its delivery is
	// done (retired) without a mail.
	delivered := `optinproxy_webhook_deliveries_total{outcome="delivered",target="confirmations"}`
	if v := metric(t, d.server, delivered); v != 1 {
		t.Fatalf("%s = %v before the import, want 1", delivered, v)
	}
	d.api(t, "POST", "/api/v1/imports", "text/csv", "email,purpose,status,basis,source\npiet@example.com,newsletter,pending,consent,form\n", nil)
	if c := d.consent(t, "piet@example.com"); c["status"] != "pending" {
		t.Fatalf("imported record %v", c)
	}
	waitUntil(t, "the import's pending event done", func() bool { return metric(t, d.server, delivered) == 2 })
	if n := len(mailsTo(t, dir, "piet@example.com")); n != 0 {
		t.Errorf("the import mailed piet %d times", n)
	}
	// The log names no address.
	line := d.logs.waitFor(t, "double opt-in confirmed", 5*time.Second)
	if strings.Contains(fmt.Sprint(line), "jan@") {
		t.Errorf("log line holds an address: %v", line)
	}
}

// A recipient confirms in a real browser (Debian's chromium): the link
// from the mail opens the page in the browser's language, the button
// confirms, and the confirmed page says so, in Dutch and in English.
func TestBrowserConfirmFromMail(t *testing.T) {
	if testing.Short() {
		t.Skip("drives chromium")
	}
	dir := t.TempDir()
	d := startDOI(t, dir)
	for _, tt := range []struct {
		email, accept, button, done string
	}{
		{"jan@example.com", "nl-NL,nl", "Aanmelding bevestigen", "Uw aanmelding is bevestigd"},
		{"ann@example.com", "en-GB,en", "Confirm subscription", "Your subscription is confirmed"},
	} {
		d.signUp(t, tt.email, `{"ip": "192.0.2.7"}`)
		_, _, link := mailedLink(t, dir, tt.email)
		ctx, cancel := context.WithTimeout(testtools.Browser(t, tt.accept), 60*time.Second)
		if err := chromedp.Do(ctx, chromedp.Navigate(link)); err != nil {
			t.Fatal(err)
		}
		body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil || !strings.Contains(body, tt.button) || !strings.Contains(body, "Our monthly newsletter") {
			t.Fatalf("%s: page %q %v", tt.accept, body, err)
		}
		if c := d.consent(t, tt.email); c["status"] != "pending" {
			t.Fatalf("%s: opening the page changed the record: %v", tt.email, c)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("button[type=submit]"))); err != nil {
			t.Fatal(err)
		}
		testtools.WaitTitle(t, ctx, tt.done)
		cancel()
		if c := d.consent(t, tt.email); c["status"] != "granted" || c["source"] != "double_opt_in" {
			t.Errorf("%s after the button: %v", tt.email, c)
		}
	}
}
