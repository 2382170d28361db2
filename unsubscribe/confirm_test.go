package unsubscribe

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

const pendingExpiry = 7 * 24 * time.Hour

var doiPurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true,
		DoubleOptIn: true, Description: "Onze maandelijkse nieuwsbrief"},
	"offers": {Name: "offers", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true, DoubleOptIn: true},
}

// confirmPages is the confirm handler, and the unsubscribe handler
// beside it, on a real store behind a real HTTP server, with a clock the
// test moves. Jan's newsletter is pending.
type confirmPages struct {
	*pages
	clock   *testtools.Clock
	pending optin.Event
}

func newConfirmPages(t *testing.T, store optin.Store) *confirmPages {
	t.Helper()
	return newConfirmPagesWith(t, store, doiPurposes)
}

func newConfirmPagesWith(t *testing.T, store optin.Store, purposes optin.Purposes) *confirmPages {
	t.Helper()
	clock := testtools.NewClock(time.Now().Truncate(time.Second))
	ledger, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: purposes, PolicyVersion: "2026-01", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := &pages{t: t, ledger: ledger, tokens: mustTokens(t, secretA), reg: prometheus.NewRegistry(), jan: mustAddress(t, "jan@example.com")}
	p.h, err = NewHandler(HandlerOptions{Tokens: p.tokens, Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	confirm, err := NewConfirmHandler(ConfirmOptions{Tokens: p.tokens, Ledger: ledger, Expiry: pendingExpiry,
		Metrics: p.reg, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/u/", p.h)
	mux.Handle("/confirm/", confirm)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	c := &confirmPages{pages: p, clock: clock}
	res, err := ledger.Grant(context.Background(), p.jan, "newsletter", optin.ConsentChange{Source: optin.SourceForm, Actor: "crm",
		Evidence: optin.Evidence{IP: "192.0.2.7", PolicyVersion: "2025-06"}})
	if err != nil || res.Event.Type != optin.EventConsentPending {
		t.Fatalf("sign-up: %v, %+v", err, res.Event)
	}
	c.pending = res.Event
	return c
}

func fileConfirmPages(t *testing.T) *confirmPages {
	return newConfirmPages(t, teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db")))
}

// eachConfirmStore runs f on the file store and on Redis.
func eachConfirmStore(t *testing.T, f func(t *testing.T, c *confirmPages)) {
	t.Run("file", func(t *testing.T) { f(t, fileConfirmPages(t)) })
	t.Run("redis", func(t *testing.T) { f(t, newConfirmPages(t, teststore.Redis(t, redistest.Start(t)))) })
}

// confirmLink is the link a confirmation mail carries: issued at the
// time the request was recorded.
func (c *confirmPages) confirmLink(purpose string) string {
	return c.srv.URL + "/confirm/" + c.tokens.IssueKind(KindConfirm, Claim{Subject: c.jan, Purpose: purpose, Issued: c.pending.Time})
}

func (c *confirmPages) record(purpose string) *optin.Consent {
	c.t.Helper()
	for _, r := range c.view().Consents {
		if r.Purpose == purpose {
			return &r
		}
	}
	return nil
}

func (c *confirmPages) confirmed(purpose string) float64 {
	c.t.Helper()
	if v, ok := c.counter("optinproxy_confirmations_total", map[string]string{"purpose": purpose}); ok {
		return v
	}
	return -1
}

func TestConfirmGetChangesNothing(t *testing.T) {
	eachConfirmStore(t, func(t *testing.T, c *confirmPages) {
		before := len(c.view().Events)
		link := c.confirmLink("newsletter")
		for range 3 { // a scanner, a preview, the person
			resp, body := c.do(http.MethodGet, link, "", nil)
			wantStatus(t, "GET", resp, body, 200, `<html lang="nl">`, "<title>Aanmelding bevestigen</title>",
				"Bevestig dat u zich wilt aanmelden voor: <strong>Onze maandelijkse nieuwsbrief</strong>",
				`<form method="post" action="/confirm/`, `<button type="submit">Aanmelding bevestigen</button>`,
				"Doet u niets, dan wordt u niet aangemeld.")
			for k, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "Content-Security-Policy": pageCSP} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
			for _, external := range []string{"<script", "src=", "http://", "https://", "<link"} {
				if strings.Contains(body, external) {
					t.Errorf("page holds %q", external)
				}
			}
		}
		resp, _ := c.do(http.MethodHead, link, "", nil)
		if resp.StatusCode != 200 {
			t.Errorf("HEAD: %d", resp.StatusCode)
		}
		if n := len(c.view().Events) - before; n != 0 {
			t.Errorf("GET recorded %d events", n)
		}
		if r := c.record("newsletter"); r.Status != optin.StatusPending {
			t.Errorf("after GET the record is %s", r.Status)
		}
		if d := c.decide("newsletter"); d.Allow {
			t.Errorf("after GET the newsletter is %v", d)
		}
	})
}

// TestConfirmPostGrants: the button grants, with the evidence of the
// confirmation; a repeat says so and records nothing.
func TestConfirmPostGrants(t *testing.T) {
	eachConfirmStore(t, func(t *testing.T, c *confirmPages) {
		c.clock.Advance(2 * time.Hour)
		link := c.confirmLink("newsletter")
		resp, body := c.post(link, nil, "User-Agent", "TestBrowser/2.0")
		wantStatus(t, "POST", resp, body, 200, "<title>Uw aanmelding is bevestigd</title>",
			"U bent aangemeld voor: <strong>Onze maandelijkse nieuwsbrief</strong>", "met de link onder aan elke e-mail")
		r := c.record("newsletter")
		if r.Status != optin.StatusGranted || r.Source != optin.SourceDoubleOptIn || !r.GrantedAt.Equal(c.clock.Now()) || r.PolicyVersion != "2025-06" {
			t.Errorf("record %+v, want granted by double_opt_in now under the sign-up's policy version", r)
		}
		events := c.view().Events
		last := events[len(events)-1]
		var d optin.ConsentDetails
		if err := json.Unmarshal(last.Details, &d); err != nil {
			t.Fatal(err)
		}
		ev := d.Evidence
		if last.Type != optin.EventConsentGranted || last.Actor != "confirm" || ev == nil {
			t.Fatalf("last event %+v", last)
		}
		if !ev.Time.Equal(c.clock.Now()) || ev.IP != "127.0.0.1" || ev.UserAgent != "TestBrowser/2.0" || ev.PolicyVersion != "2025-06" ||
			ev.Text != "Bevestig dat u zich wilt aanmelden voor: Onze maandelijkse nieuwsbrief [Aanmelding bevestigen]" ||
			ev.Extra["pending_event"] != c.pending.ID || ev.Extra["lang"] != "nl" {
			t.Errorf("evidence %+v, want time, IP, user agent, the sign-up's policy version, the text, the pending event", ev)
		}
		if got := c.decide("newsletter"); !got.Allow || got.Reason != optin.ReasonConsent {
			t.Errorf("newsletter after confirming: %v", got)
		}
		if n := c.confirmed("newsletter"); n != 1 {
			t.Errorf("counted %v confirmations", n)
		}

		n := len(events)
		for range 2 {
			resp, body = c.post(link, nil)
			wantStatus(t, "again", resp, body, 200, "<title>U was al aangemeld</title>", "er is niets veranderd")
		}
		if got := len(c.view().Events); got != n {
			t.Errorf("repeats recorded %d events", got-n)
		}
		if n := c.confirmed("newsletter"); n != 1 {
			t.Errorf("repeats counted: %v", n)
		}
	})
}

// The link works until pending_expiry after the request was recorded,
// and not a second longer; a record that expired meanwhile is expired.
func TestConfirmExpired(t *testing.T) {
	c := fileConfirmPages(t)
	link := c.confirmLink("newsletter")
	before := len(c.view().Events)
	c.clock.Advance(pendingExpiry)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		resp, body := c.do(method, link, "", nil)
		wantStatus(t, method+" expired", resp, body, 410, "Deze link is verlopen", "u bent niet aangemeld")
	}
	if n := len(c.view().Events); n != before || c.record("newsletter").Status != optin.StatusPending {
		t.Errorf("an expired link changed something: %d events", n-before)
	}

	c.clock.Advance(-time.Second)
	resp, body := c.post(link, nil, "Accept-Language", "en")
	wantStatus(t, "a second before", resp, body, 200, "Your subscription is confirmed")

	// A record the retention sweeper marked expired.
	ann := mustAddress(t, "ann@example.com")
	res, err := c.ledger.Grant(context.Background(), ann, "offers", optin.ConsentChange{Source: optin.SourceForm})
	if err != nil {
		t.Fatal(err)
	}
	c.clock.Advance(time.Second)
	if _, err := c.ledger.Grant(context.Background(), ann, "offers", optin.ConsentChange{Status: optin.StatusExpired, Source: "sweeper"}); err != nil {
		t.Fatal(err)
	}
	annLink := c.srv.URL + "/confirm/" + c.tokens.IssueKind(KindConfirm, Claim{Subject: ann, Purpose: "offers", Issued: res.Event.Time})
	resp, body = c.post(annLink, nil)
	wantStatus(t, "record expired", resp, body, 410, "Deze link is verlopen")
}

// A withdrawn request, or one of which nothing is left (an erased
// subject), cannot be confirmed: 410, and nothing changes.
func TestConfirmNothingPending(t *testing.T) {
	eachConfirmStore(t, func(t *testing.T, c *confirmPages) {
		ctx := context.Background()
		if _, err := c.ledger.Withdraw(ctx, c.jan, "newsletter", optin.ConsentChange{Source: optin.SourceAPI}); err != nil {
			t.Fatal(err)
		}
		piet := mustAddress(t, "piet@example.com")
		if _, err := c.ledger.Suppress(ctx, piet, optin.SuppressErased, "test"); err != nil {
			t.Fatal(err)
		}
		events := len(c.view().Events)
		for name, link := range map[string]string{
			"withdrawn": c.confirmLink("newsletter"),
			"erased":    c.srv.URL + "/confirm/" + c.tokens.IssueKind(KindConfirm, Claim{Subject: piet, Purpose: "newsletter", Issued: c.clock.Now()}),
		} {
			resp, body := c.post(link, nil)
			wantStatus(t, name, resp, body, 410, "Er valt niets te bevestigen", "Er is niets veranderd")
		}
		if n := len(c.view().Events); n != events || c.record("newsletter").Status != optin.StatusWithdrawn {
			t.Errorf("recorded %d events; record %s", n-events, c.record("newsletter").Status)
		}
		if v, err := c.ledger.Store().Subject(ctx, piet, 10); err != nil || len(v.Consents) != 0 {
			t.Errorf("the erased subject: %v, %+v", err, v)
		}
		if n := c.confirmed("newsletter"); n != 0 {
			t.Errorf("counted %v", n)
		}
	})
}

// A tampered token, one of another secret, and tokens of the other kinds
// for the very same claim are bad links: 400, nothing changed. A
// confirmation token does not unsubscribe either.
func TestConfirmBadTokens(t *testing.T) {
	c := fileConfirmPages(t)
	link := c.confirmLink("newsletter")
	claim := Claim{Subject: c.jan, Purpose: "newsletter", Issued: c.pending.Time}
	tampered := link[:len(link)-3] + flipChar(link[len(link)-3]) + link[len(link)-2:]
	events := len(c.view().Events)
	for name, l := range map[string]string{
		"tampered":      tampered,
		"nonsense":      c.srv.URL + "/confirm/nonsense",
		"other secret":  c.srv.URL + "/confirm/" + mustTokens(t, secretC).IssueKind(KindConfirm, claim),
		"unsubscribe":   c.srv.URL + "/confirm/" + c.tokens.Issue(claim),
		"portal":        c.srv.URL + "/confirm/" + c.tokens.IssueKind(KindPortal, claim),
		"confirm at /u": c.srv.URL + "/u/" + strings.TrimPrefix(link, c.srv.URL+"/confirm/"),
	} {
		resp, body := c.do(http.MethodGet, l, "", nil)
		wantStatus(t, "GET "+name, resp, body, 400, "Deze link werkt niet", "Er is niets veranderd")
		resp, body = c.post(l, nil, "Accept-Language", "en")
		wantStatus(t, "POST "+name, resp, body, 400, `lang="en"`, "This link does not work")
		if name != "confirm at /u" && !strings.Contains(body, "The confirmation link is incomplete or damaged") {
			t.Errorf("%s: the page does not speak of the confirmation link:\n%s", name, body)
		}
	}
	if n := len(c.view().Events); n != events || c.record("newsletter").Status != optin.StatusPending {
		t.Errorf("bad tokens recorded %d events", n-events)
	}
	// A purpose no longer configured has nothing to confirm.
	gone := c.srv.URL + "/confirm/" + c.tokens.IssueKind(KindConfirm, Claim{Subject: c.jan, Purpose: "retired", Issued: c.clock.Now()})
	resp, body := c.post(gone, nil)
	wantStatus(t, "unknown purpose", resp, body, 410, "Er valt niets te bevestigen")
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		resp, body := c.do(method, link, "", nil)
		wantStatus(t, method, resp, body, 405)
	}
}

func TestConfirmLanguages(t *testing.T) {
	c := fileConfirmPages(t)
	link := c.confirmLink("newsletter")
	resp, body := c.do(http.MethodGet, link, "", nil, "Accept-Language", "en-GB,en;q=0.9")
	wantStatus(t, "GET en", resp, body, 200, `<html lang="en">`, "Please confirm that you want to sign up for:", "Confirm subscription", `href="?lang=nl"`)
	resp, body = c.do(http.MethodGet, link+"?lang=en", "", nil, "Accept-Language", "nl")
	wantStatus(t, "?lang=en", resp, body, 200, `<html lang="en">`, `action="/confirm/`, `?lang=en"`)
	resp, body = c.post(link+"?lang=en", nil)
	wantStatus(t, "POST en", resp, body, 200, `<html lang="en">`, "Your subscription is confirmed", "You are signed up for:")
	if ev := optin.EvidenceOf(c.view().Events[len(c.view().Events)-1]); ev == nil || ev.Extra["lang"] != "en" ||
		ev.Text != "Please confirm that you want to sign up for: Onze maandelijkse nieuwsbrief [Confirm subscription]" {
		t.Errorf("evidence of an English confirmation: %+v", ev)
	}
}

func TestConfirmStoreDown(t *testing.T) {
	srv := redistest.Start(t)
	c := newConfirmPages(t, teststore.Redis(t, srv))
	link := c.confirmLink("newsletter")
	srv.Stop()
	// The page still asks: GET does not touch the store.
	resp, body := c.do(http.MethodGet, link, "", nil)
	wantStatus(t, "GET", resp, body, 200, "Aanmelding bevestigen")
	resp, body = c.post(link, nil, "Accept-Language", "en")
	wantStatus(t, "POST", resp, body, 503, "Please try again later", "Your confirmation could not be recorded just now.")
	if strings.Contains(body, "confirmed") {
		t.Errorf("the 503 page claims success:\n%s", body)
	}
	if n := c.confirmed("newsletter"); n != 0 {
		t.Errorf("counted %v with the store down", n)
	}
}

func TestNewConfirmHandlerValidates(t *testing.T) {
	c := fileConfirmPages(t)
	good := ConfirmOptions{Tokens: c.tokens, Ledger: c.ledger, Expiry: time.Hour}
	for name, broken := range map[string]func(o *ConfirmOptions){
		"no tokens":        func(o *ConfirmOptions) { o.Tokens = nil },
		"no ledger":        func(o *ConfirmOptions) { o.Ledger = nil },
		"no expiry":        func(o *ConfirmOptions) { o.Expiry = 0 },
		"unknown language": func(o *ConfirmOptions) { o.Language = "de" },
		"metric twice":     func(o *ConfirmOptions) { o.Metrics = c.reg },
	} {
		o := good
		broken(&o)
		if _, err := NewConfirmHandler(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := NewConfirmHandler(good); err != nil {
		t.Error(err)
	}
}
