package unsubscribe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

var testPurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true,
		Description: "Onze maandelijkse nieuwsbrief"},
	"offers": {Name: "offers", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true},
	"orders": {Name: "orders", Basis: optin.BasisContract, Category: optin.CategoryTransactional},
}

// pages is a handler on a real store behind a real HTTP server.
type pages struct {
	t      *testing.T
	srv    *httptest.Server
	h      *Handler
	ledger *optin.Ledger
	tokens *Tokens
	reg    *prometheus.Registry
	jan    optin.Address
}

func newPages(t *testing.T, store optin.Store, opts ...func(*HandlerOptions)) *pages {
	t.Helper()
	ledger, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: testPurposes, PolicyVersion: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	p := &pages{t: t, ledger: ledger, tokens: mustTokens(t, secretA), reg: prometheus.NewRegistry(), jan: mustAddress(t, "jan@example.com")}
	o := HandlerOptions{Tokens: p.tokens, Ledger: ledger, Metrics: p.reg}
	for _, f := range opts {
		f(&o)
	}
	p.h, err = NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/u/", p.h)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	for _, purpose := range []string{"newsletter", "offers"} {
		if _, err := ledger.Grant(context.Background(), p.jan, purpose, optin.ConsentChange{Source: optin.SourceForm}); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func filePages(t *testing.T, opts ...func(*HandlerOptions)) *pages {
	return newPages(t, teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db")), opts...)
}

func (p *pages) link(purpose string) string {
	return p.srv.URL + "/u/" + p.tokens.Issue(Claim{Subject: p.jan, Purpose: purpose, Message: "mid:<1@crm.example>", Issued: time.Now()})
}

// do sends one request with a client that keeps no cookies and follows
// no redirect, as a mail client's one-click POST.
func (p *pages) do(method, link, contentType string, body io.Reader, header ...string) (*http.Response, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, link, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp, string(b)
}

func (p *pages) post(link string, form url.Values, header ...string) (*http.Response, string) {
	return p.do(http.MethodPost, link, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), header...)
}

func (p *pages) view() *optin.SubjectView {
	p.t.Helper()
	v, err := p.ledger.Store().Subject(context.Background(), p.jan, 100)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

func (p *pages) decide(purpose string) optin.Decision {
	p.t.Helper()
	sts, err := p.ledger.Store().Lookup(context.Background(), optin.LookupQuery{Purpose: purpose, Addresses: []optin.Address{p.jan}})
	if err != nil {
		p.t.Fatal(err)
	}
	return optin.Decide(testPurposes[purpose], sts[0], false, time.Now())
}

func (p *pages) counted(purpose, channel string) float64 {
	p.t.Helper()
	v, _ := p.counter("optinproxy_unsubscribes_total", map[string]string{"purpose": purpose, "channel": channel})
	return v
}

// counter is the value of the counter name whose labels include want,
// as registered in p.reg; found is false when there is none.
func (p *pages) counter(name string, want map[string]string) (v float64, found bool) {
	p.t.Helper()
	families, err := p.reg.Gather()
	if err != nil {
		p.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matched := 0
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
					matched++
				}
			}
			if matched == len(want) {
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

func wantStatus(t *testing.T, what string, resp *http.Response, body string, code int, texts ...string) {
	t.Helper()
	if resp.StatusCode != code {
		t.Errorf("%s: status %d, want %d:\n%s", what, resp.StatusCode, code, body)
	}
	for _, s := range texts {
		if !strings.Contains(body, s) {
			t.Errorf("%s: page lacks %q:\n%s", what, s, body)
		}
	}
}

func TestGetAsksAndChangesNothing(t *testing.T) {
	p := filePages(t)
	before := len(p.view().Events)
	link := p.link("newsletter")
	for range 3 { // a scanner, a preview, the person
		resp, body := p.do(http.MethodGet, link, "", nil)
		wantStatus(t, "GET", resp, body, 200, `<html lang="nl">`, "Onze maandelijkse nieuwsbrief", `name="choice" value="this" checked`,
			`name="choice" value="all"`, `<label for="choice-all">Alle marketingmail</label>`, `<button type="submit">`)
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("CSP %q", csp)
		}
		for _, external := range []string{"<script", "src=", "http://", "https://", "<link"} {
			if strings.Contains(body, external) {
				t.Errorf("page holds %q", external)
			}
		}
	}
	if after := len(p.view().Events); after != before {
		t.Errorf("GET recorded %d events", after-before)
	}
	if d := p.decide("newsletter"); !d.Allow {
		t.Errorf("after GET the newsletter is %v", d)
	}
	// HEAD, as some link checkers send, changes nothing either.
	resp, _ := p.do(http.MethodHead, link, "", nil)
	if resp.StatusCode != 200 || len(p.view().Events) != before {
		t.Errorf("HEAD: %d, %d events", resp.StatusCode, len(p.view().Events)-before)
	}
}

// The page's style is allowed by the CSP's hash, so it is applied
// without 'unsafe-inline'.
func TestPageStyleMatchesCSP(t *testing.T) {
	p := filePages(t)
	resp, body := p.do(http.MethodGet, p.link("newsletter"), "", nil)
	start, end := strings.Index(body, "<style>")+len("<style>"), strings.Index(body, "</style>")
	if start < len("<style>") || end < start {
		t.Fatalf("no style in %s", body)
	}
	want := "'sha256-" + encodeStd(sha256Sum(body[start:end])) + "'"
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, want) {
		t.Errorf("CSP %q does not allow the style (%s)", csp, want)
	}
}

func TestLanguages(t *testing.T) {
	p := filePages(t)
	link := p.link("newsletter")
	for _, tt := range []struct {
		accept, query, want, text string
	}{
		{"", "", "nl", "Wilt u zich afmelden voor:"},
		{"en-GB,en;q=0.9", "", "en", "Do you want to unsubscribe from:"},
		{"nl-BE", "", "nl", "Afmelden bevestigen"},
		{"fr, en;q=0.5", "", "en", "Confirm unsubscribe"},
		{"fr", "", "nl", "Afmelden bevestigen"},
		{"en", "?lang=nl", "nl", "Afmelden bevestigen"},
		{"", "?lang=en", "en", `href="?lang=nl"`},
		{"garbage;;q=x", "", "nl", "Afmelden"},
	} {
		resp, body := p.do(http.MethodGet, link+tt.query, "", nil, "Accept-Language", tt.accept)
		wantStatus(t, tt.accept+tt.query, resp, body, 200, `<html lang="`+tt.want+`">`, tt.text)
	}
	// The default language comes from the options.
	en := filePages(t, func(o *HandlerOptions) { o.Language = English })
	resp, body := en.do(http.MethodGet, en.link("newsletter"), "", nil, "Accept-Language", "de")
	wantStatus(t, "default en", resp, body, 200, `<html lang="en">`)
	// The confirmation speaks the language asked too.
	resp, body = p.post(link+"?lang=en", url.Values{"choice": {"this"}})
	wantStatus(t, "POST en", resp, body, 200, `<html lang="en">`, "You are unsubscribed from:")
}

func TestPagePostWithdraws(t *testing.T) {
	p := filePages(t)
	resp, body := p.post(p.link("newsletter"), url.Values{"choice": {"this"}}, "User-Agent", "TestBrowser/1.0")
	wantStatus(t, "POST", resp, body, 200, "U bent afgemeld voor:", "Onze maandelijkse nieuwsbrief")
	v := p.view()
	last := v.Events[len(v.Events)-1]
	if last.Type != optin.EventConsentWithdrawn || last.Actor != "unsubscribe" || last.Purpose != "newsletter" {
		t.Fatalf("last event %+v, want consent.withdrawn of newsletter by unsubscribe", last)
	}
	var d optin.ConsentDetails
	if err := json.Unmarshal(last.Details, &d); err != nil {
		t.Fatal(err)
	}
	if d.Source != optin.SourceUnsubscribe || d.Evidence == nil || d.Evidence.IP != "127.0.0.1" ||
		d.Evidence.UserAgent != "TestBrowser/1.0" || d.Evidence.Extra["channel"] != "page" || d.Evidence.Extra["message"] == "" {
		t.Errorf("details %s", last.Details)
	}
	if got := p.decide("newsletter"); got.Allow || got.Reason != optin.ReasonWithdrawn {
		t.Errorf("newsletter after unsubscribe: %v", got)
	}
	if got := p.decide("offers"); !got.Allow {
		t.Errorf("offers after unsubscribing from the newsletter only: %v", got)
	}
	if n := p.counted("newsletter", "page"); n != 1 {
		t.Errorf("counted %v page unsubscribes, want 1", n)
	}
}

func TestOneClickWithdraws(t *testing.T) {
	for _, enc := range []string{"urlencoded", "multipart"} {
		t.Run(enc, func(t *testing.T) {
			p := filePages(t)
			link := p.link("newsletter")
			var resp *http.Response
			var body string
			if enc == "urlencoded" {
				resp, body = p.post(link, url.Values{"List-Unsubscribe": {"One-Click"}})
			} else {
				var b bytes.Buffer
				mw := multipart.NewWriter(&b)
				mw.WriteField("List-Unsubscribe", "One-Click")
				mw.Close()
				resp, body = p.do(http.MethodPost, link, mw.FormDataContentType(), &b)
			}
			wantStatus(t, "one-click", resp, body, 200)
			if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Location") != "" {
				t.Errorf("one-click answer sets %v", resp.Header)
			}
			if got := p.decide("newsletter"); got.Reason != optin.ReasonWithdrawn {
				t.Errorf("newsletter after one-click: %v", got)
			}
			last := p.view().Events
			if ev := optin.EvidenceOf(last[len(last)-1]); ev == nil || ev.Extra["channel"] != "one-click" {
				t.Errorf("evidence %+v", ev)
			}
			if n := p.counted("newsletter", "one-click"); n != 1 {
				t.Errorf("counted %v one-click unsubscribes, want 1", n)
			}
		})
	}
}

func TestPostIsIdempotent(t *testing.T) {
	p := filePages(t)
	link := p.link("newsletter")
	resp, body := p.post(link, url.Values{"List-Unsubscribe": {"One-Click"}})
	wantStatus(t, "first", resp, body, 200)
	events := len(p.view().Events)
	for _, form := range []url.Values{{"List-Unsubscribe": {"One-Click"}}, {"choice": {"this"}}} {
		resp, body = p.post(link, form)
		wantStatus(t, "again", resp, body, 200, "U bent afgemeld")
	}
	if n := len(p.view().Events); n != events {
		t.Errorf("repeats recorded %d more events", n-events)
	}
	resp, body = p.post(link, url.Values{"choice": {"all"}})
	wantStatus(t, "all", resp, body, 200)
	events = len(p.view().Events)
	resp, body = p.post(link, url.Values{"choice": {"all"}})
	wantStatus(t, "all again", resp, body, 200)
	if n := len(p.view().Events); n != events {
		t.Errorf("a repeated all recorded %d more events", n-events)
	}
	if n := p.counted("newsletter", "one-click") + p.counted("newsletter", "page"); n != 2 {
		t.Errorf("counted %v, want 2 (the first one-click, the first all)", n)
	}
}

func TestAllMarketing(t *testing.T) {
	p := filePages(t)
	resp, body := p.post(p.link("newsletter"), url.Values{"choice": {"all"}})
	wantStatus(t, "all", resp, body, 200, "U krijgt geen marketingmail meer van ons.")
	want := optin.SuppressedReason(optin.SuppressUnsubscribedAll)
	for _, purpose := range []string{"newsletter", "offers"} {
		if got := p.decide(purpose); got.Allow || got.Reason != want {
			t.Errorf("%s after all marketing: %v, want block %s", purpose, got, want)
		}
	}
	if got := p.decide("orders"); !got.Allow {
		t.Errorf("transactional mail after all marketing: %v", got)
	}
	v := p.view()
	var withdrawn, suppressed bool
	for _, e := range v.Events {
		withdrawn = withdrawn || e.Type == optin.EventConsentWithdrawn && e.Purpose == "newsletter" && e.Actor == "unsubscribe"
		suppressed = suppressed || e.Type == optin.EventSuppressionAdded && e.Actor == "unsubscribe"
	}
	if !withdrawn || !suppressed {
		t.Errorf("history lacks the withdrawal (%v) or the suppression (%v): %+v", withdrawn, suppressed, v.Events)
	}
}

func TestBadTokenChangesNothing(t *testing.T) {
	p := filePages(t)
	link := p.link("newsletter")
	tampered := link[:len(link)-3] + flipChar(link[len(link)-3]) + link[len(link)-2:]
	events := len(p.view().Events)
	for _, l := range []string{tampered, p.srv.URL + "/u/nonsense", p.srv.URL + "/u/" + mustTokens(t, secretC).Issue(Claim{Subject: p.jan, Purpose: "newsletter"})} {
		resp, body := p.do(http.MethodGet, l, "", nil)
		wantStatus(t, "GET "+l, resp, body, 400, "Deze link werkt niet", "Er is niets veranderd")
		resp, body = p.post(l, url.Values{"List-Unsubscribe": {"One-Click"}}, "Accept-Language", "en")
		wantStatus(t, "POST "+l, resp, body, 400, `lang="en"`, "This link does not work")
	}
	if n := len(p.view().Events); n != events {
		t.Errorf("bad tokens recorded %d events", n-events)
	}
	if got := p.decide("newsletter"); !got.Allow {
		t.Errorf("newsletter after bad tokens: %v", got)
	}
}

func flipChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestBadRequests(t *testing.T) {
	p := filePages(t)
	link := p.link("newsletter")
	events := len(p.view().Events)
	for _, tt := range []struct {
		name, method, ctype, body string
		want                      int
	}{
		{"no choice", "POST", "application/x-www-form-urlencoded", "", 400},
		{"unknown choice", "POST", "application/x-www-form-urlencoded", "choice=everything", 400},
		{"one-click spelled wrong", "POST", "application/x-www-form-urlencoded", "List-Unsubscribe=one-click", 400},
		{"too large", "POST", "application/x-www-form-urlencoded", "choice=this&x=" + strings.Repeat("a", 5000), 400},
		{"broken multipart", "POST", "multipart/form-data; boundary=x", "--x\r\nnonsense", 400},
		{"PUT", "PUT", "application/x-www-form-urlencoded", "choice=this", 405},
		{"DELETE", "DELETE", "", "", 405},
	} {
		resp, body := p.do(tt.method, link, tt.ctype, strings.NewReader(tt.body))
		wantStatus(t, tt.name, resp, body, tt.want)
	}
	// The choice must come in the body, not in the URL.
	resp, body := p.post(link+"?choice=this&List-Unsubscribe=One-Click", nil)
	wantStatus(t, "choice in the query", resp, body, 400)
	if n := len(p.view().Events); n != events {
		t.Errorf("bad requests recorded %d events", n-events)
	}
	resp, body = p.do(http.MethodGet, p.srv.URL+"/u/", "", nil)
	wantStatus(t, "no token", resp, body, 404)
}

// A link whose purpose was removed from the configuration still works:
// it offers, and does, "all marketing".
func TestUnknownPurposeMeansAll(t *testing.T) {
	p := filePages(t)
	link := p.link("old-campaign")
	resp, body := p.do(http.MethodGet, link, "", nil)
	wantStatus(t, "GET", resp, body, 200, `<input type="hidden" name="choice" value="all">`, "Alle marketingmail")
	if strings.Contains(body, `value="this"`) {
		t.Errorf("page offers the unknown purpose:\n%s", body)
	}
	resp, body = p.post(link, url.Values{"List-Unsubscribe": {"One-Click"}})
	wantStatus(t, "one-click", resp, body, 200, "U krijgt geen marketingmail meer van ons.")
	if got := p.decide("offers"); got.Reason != optin.SuppressedReason(optin.SuppressUnsubscribedAll) {
		t.Errorf("offers after an old link's one-click: %v", got)
	}
}

func TestStoreDownAnswers503(t *testing.T) {
	srv := redistest.Start(t)
	p := newPages(t, teststore.Redis(t, srv))
	link := p.link("newsletter")
	srv.Stop()
	// The page still asks: GET does not touch the store.
	resp, body := p.do(http.MethodGet, link, "", nil)
	wantStatus(t, "GET", resp, body, 200)
	resp, body = p.post(link, url.Values{"List-Unsubscribe": {"One-Click"}}, "Accept-Language", "en")
	wantStatus(t, "POST", resp, body, 503, "Please try again later")
	if strings.Contains(body, "unsubscribed") {
		t.Errorf("the 503 page claims success:\n%s", body)
	}
	if n := p.counted("newsletter", "one-click"); n != 0 {
		t.Errorf("counted %v unsubscribes with the store down", n)
	}
	if err := p.h.Apply(context.Background(), p.tokens.Issue(Claim{Subject: p.jan, Purpose: "newsletter"}), ChannelMailto); err == nil || errors.Is(err, ErrBadToken) {
		t.Errorf("Apply with the store down: %v", err)
	}
}

func TestApplyMailto(t *testing.T) {
	p := filePages(t)
	token := p.tokens.Issue(Claim{Subject: p.jan, Purpose: "offers"})
	if err := p.h.Apply(context.Background(), token, ChannelMailto); err != nil {
		t.Fatal(err)
	}
	if got := p.decide("offers"); got.Reason != optin.ReasonWithdrawn {
		t.Errorf("offers after mailto: %v", got)
	}
	if err := p.h.Apply(context.Background(), token, ChannelMailto); err != nil {
		t.Errorf("repeated mailto: %v", err)
	}
	if n := p.counted("offers", "mailto"); n != 1 {
		t.Errorf("counted %v mailto unsubscribes, want 1", n)
	}
	if err := p.h.Apply(context.Background(), token[1:], ChannelMailto); !errors.Is(err, ErrBadToken) {
		t.Errorf("Apply of a bad token: %v", err)
	}
	if err := p.h.Apply(context.Background(), token, "carrier-pigeon"); err == nil {
		t.Error("Apply accepted an unknown channel")
	}
}

func TestMetricRegistered(t *testing.T) {
	p := filePages(t)
	families, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if f.GetName() == "optinproxy_unsubscribes_total" {
			n += len(f.GetMetric())
		}
	}
	if n != 6 { // newsletter and offers, three channels each; orders has no links
		t.Errorf("%d series before any unsubscribe, want 6", n)
	}
}

func TestNewHandlerValidates(t *testing.T) {
	tk := mustTokens(t, secretA)
	ledger, _ := optin.NewLedger(optin.LedgerOptions{Store: teststore.File(t, filepath.Join(t.TempDir(), "db")), Purposes: testPurposes})
	for name, o := range map[string]HandlerOptions{
		"no tokens":    {Ledger: ledger},
		"no ledger":    {Tokens: tk},
		"bad language": {Tokens: tk, Ledger: ledger, Language: "de"},
	} {
		if _, err := NewHandler(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := NewHandler(HandlerOptions{Tokens: tk, Ledger: ledger, Metrics: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHandler(HandlerOptions{Tokens: tk, Ledger: ledger, Metrics: reg}); err == nil {
		t.Error("a second handler registered the same metric")
	}
}
