package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
	"optinproxy/portal"
	"optinproxy/unsubscribe"
)

// The portal shows every configured purpose with its description, the
// subject's state, since when, until when, and its history in words; and
// the suppressions in words.
func TestPortalPage(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := e.ledger.Withdraw(ctx, e.jan, "offers", optin.ConsentChange{Source: optin.SourceUnsubscribe}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ledger.Suppress(ctx, e.jan, optin.SuppressComplaint, "webhook:mandrill"); err != nil {
			t.Fatal(err)
		}
		resp, body := e.get(e.link(e.jan))
		wantStatus(t, "portal", resp, body, 200,
			`<html lang="nl">`, "<h1>Uw gegevens</h1>", "Dit bewaren wij over jan@example.com",
			// Every purpose, by its description (or name), changeable ones first.
			"Onze maandelijkse nieuwsbrief", "Uitnodigingen voor evenementen", `<h3 id="purpose-offers">offers</h3>`, "Berichten over uw bestellingen",
			// States.
			`<dd class="state-granted">U heeft toestemming gegeven</dd>`, `<dd class="state-none">Geen keuze vastgelegd</dd>`,
			`<dd class="state-withdrawn">Ingetrokken</dd>`,
			"<dt>Sinds</dt>", "<dt>Verloopt</dt>", "ons gerechtvaardigd belang; u kunt bezwaar maken",
			// History in words: what and through what.
			"<td>Toestemming gegeven</td><td>formulier</td>", "<td>Ingetrokken</td><td>afmeldlink</td>",
			// Suppressions in words, and their event.
			"U heeft een bericht van ons als spam gemeld", "Blokkade geplaatst: U heeft een bericht",
			// Transactional mail cannot be switched off here.
			"U kunt ze hier niet uitzetten",
			`value="withdraw"`, `value="grant"`, "/export?format=xlsx", `name="email_again"`, `name="confirm"`)
		if strings.Index(body, "Onze maandelijkse nieuwsbrief") > strings.Index(body, "Berichten over uw bestellingen") {
			t.Errorf("transactional purpose listed before marketing")
		}
		for _, raw := range []string{`"source"`, `{&#34;`, "consent.granted", "192.0.2.7"} {
			if strings.Contains(body, raw) {
				t.Errorf("page shows raw data %q", raw)
			}
		}
		checkPageHeaders(t, resp)
		checkStyleAllowed(t, resp, body)
		checkAccessible(t, body)
		// The orders purpose has no form: 3 consent forms (the marketing
		// purposes), address and erasure.
		if n := strings.Count(body, "<form "); n != 5 {
			t.Errorf("%d forms, want 5", n)
		}
		if n := e.counted("view"); n != 1 {
			t.Errorf("views counted: %v", n)
		}

		// In English when the browser asks for it, and with ?lang=.
		_, body = e.get(e.link(e.jan), "Accept-Language", "en-US,en;q=0.9")
		for _, want := range []string{`<html lang="en">`, "<h1>Your data</h1>", "You agreed", "You reported a message of ours as spam"} {
			if !strings.Contains(body, want) {
				t.Errorf("English page lacks %q", want)
			}
		}
		_, body = e.get(e.link(e.jan) + "?lang=en")
		if !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, "/consent?lang=en") {
			t.Errorf("?lang=en: the page or its forms are not in English")
		}
	})
}

// submit posts the consent form of purpose on the portal of link.
func (e *env) submit(link, purpose, action string) (*http.Response, string) {
	e.t.Helper()
	return e.post(link+"/consent", url.Values{"csrf": {e.csrf(link)}, "purpose": {purpose}, "action": {action}}, "User-Agent", "PortalTest/1.0")
}

// Withdrawing and granting from the portal record the subject's change
// with its evidence, and answer with a redirect back to the portal and a
// notice.
func TestGrantAndWithdraw(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		link := e.link(e.jan)
		resp, body := e.submit(link, "newsletter", "withdraw")
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther ||
			loc != strings.TrimPrefix(link, e.url)+"?notice=withdrawn&purpose=newsletter" {
			t.Fatalf("withdraw: %d to %q\n%s", resp.StatusCode, loc, body)
		}
		resp, body = e.follow(resp, body)
		wantStatus(t, "after withdrawing", resp, body, 200, `role="status">Opgeslagen: u ontvangt Onze maandelijkse nieuwsbrief niet meer.`,
			`<dd class="state-withdrawn">`, "<td>Ingetrokken</td><td>deze pagina</td>")
		c := e.consent(e.jan, "newsletter")
		if c.Status != optin.StatusWithdrawn || c.Source != optin.SourcePortal {
			t.Fatalf("record %+v", c)
		}
		checkEvidence(t, e, c, optin.EventConsentWithdrawn, "Ik wil dit niet meer ontvangen: Onze maandelijkse nieuwsbrief")

		// Granting again: the same way, with what the button said.
		resp, body = e.submit(link, "newsletter", "grant")
		resp, body = e.follow(resp, body)
		wantStatus(t, "after granting", resp, body, 200, "Opgeslagen: u ontvangt Onze maandelijkse nieuwsbrief.")
		c = e.consent(e.jan, "newsletter")
		if c.Status != optin.StatusGranted || c.ExpiresAt.IsZero() {
			t.Fatalf("record %+v", c)
		}
		checkEvidence(t, e, c, optin.EventConsentGranted, "Ik wil dit ontvangen: Onze maandelijkse nieuwsbrief")

		// A double opt-in purpose waits for its confirmation.
		resp, body = e.follow(e.submit(link, "events", "grant"))
		wantStatus(t, "double opt-in", resp, body, 200, "Bijna klaar", `<dd class="state-pending">`)
		if c := e.consent(e.jan, "events"); c == nil || c.Status != optin.StatusPending {
			t.Errorf("events record %+v", c)
		}
		// Withdrawing what is withdrawn changes nothing.
		resp, body = e.follow(e.submit(link, "offers", "withdraw"))
		resp, body = e.follow(e.submit(link, "offers", "withdraw"))
		wantStatus(t, "repeat", resp, body, 200, "Dit stond al zo vastgelegd")

		if e.counted("withdraw") != 2 || e.counted("grant") != 2 {
			t.Errorf("counted %v withdrawals, %v grants", e.counted("withdraw"), e.counted("grant"))
		}
	})
}

// checkEvidence: the record's event is the portal's, by the subject,
// with this request's IP, user agent, the policy version and the text.
func checkEvidence(t *testing.T, e *env, c *optin.Consent, typ optin.EventType, text string) {
	t.Helper()
	var ev *optin.Event
	for _, x := range e.view(e.jan).Events {
		if x.ID == c.EventID {
			ev = &x
		}
	}
	if ev == nil || ev.Type != typ || ev.Actor != portal.Actor {
		t.Fatalf("event %+v, want %s by %s", ev, typ, portal.Actor)
	}
	got := optin.EvidenceOf(*ev)
	if got == nil || got.IP != "127.0.0.1" || got.UserAgent != "PortalTest/1.0" || got.PolicyVersion != "2026-01" || got.Text != text || got.Time.IsZero() {
		t.Errorf("evidence %+v, want IP, user agent, policy version and %q", got, text)
	}
}

// Transactional purposes and unknown ones cannot be changed from the
// portal: 400, nothing recorded.
func TestConsentFormRefusesOthers(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	link := e.link(e.jan)
	before := len(e.view(e.jan).Events)
	for _, tc := range [][2]string{{"orders", "withdraw"}, {"nope", "grant"}, {"newsletter", "delete"}} {
		resp, body := e.submit(link, tc[0], tc[1])
		wantStatus(t, tc[0]+" "+tc[1], resp, body, http.StatusBadRequest, "Er is niets veranderd")
	}
	if after := len(e.view(e.jan).Events); after != before {
		t.Errorf("%d events recorded", after-before)
	}
}

// Every POST of the portal is refused, and changes nothing, without its
// CSRF token, with a wrong one, with the token of another portal, without
// the cookie, or from another site.
func TestPortalCSRF(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		piet := address(t, "piet@example.com")
		if _, err := e.ledger.Grant(context.Background(), piet, "newsletter", optin.ConsentChange{}); err != nil {
			t.Fatal(err)
		}
		link := e.link(e.jan)
		good := e.csrf(link)
		other := e.csrf(e.link(piet)) // the same browser, piet's page
		forms := map[string]url.Values{
			"/consent": {"purpose": {"newsletter"}, "action": {"withdraw"}},
			"/address": {"email": {"jan@new.example"}, "email_again": {"jan@new.example"}},
			"/erasure": {"confirm": {"yes"}},
		}
		before := len(e.view(e.jan).Events)
		for path, form := range forms {
			for _, tc := range []struct {
				name   string
				csrf   string
				header []string
				fresh  bool
			}{
				{"missing", "", nil, false},
				{"wrong", strings.Repeat("x", len(good)), nil, false},
				{"another portal's", other, nil, false},
				{"without the cookie", good, nil, true},
				{"cross-site", good, []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, false},
				{"same-site", good, []string{"Sec-Fetch-Site", "same-site", "Origin", "https://www.example"}, false},
				{"other origin", good, []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}, false},
			} {
				f := url.Values{}
				for k, v := range form {
					f[k] = v
				}
				if tc.csrf != "" {
					f.Set("csrf", tc.csrf)
				}
				c := e.client
				if tc.fresh {
					c = e.newClient()
				}
				resp, body := e.do(c, http.MethodPost, link+path, f, append([]string{"Sec-Fetch-Site", "same-origin", "Origin", e.url}, tc.header...)...)
				wantStatus(t, path+" "+tc.name, resp, body, http.StatusForbidden, "Er is niets veranderd")
			}
		}
		if after := len(e.view(e.jan).Events); after != before {
			t.Errorf("%d events recorded", after-before)
		}
		if c := e.consent(e.jan, "newsletter"); c.Status != optin.StatusGranted {
			t.Errorf("newsletter %s", c.Status)
		}
		if calls := e.eraser.called(); len(calls) != 0 {
			t.Errorf("erasure called: %v", calls)
		}
		if _, err := e.ledger.Store().Subject(context.Background(), address(t, "jan@new.example"), 0); err == nil {
			t.Errorf("the address was moved")
		}
		// The right token still works: the test can fail.
		if resp, body := e.post(link+"/consent", url.Values{"csrf": {good}, "purpose": {"newsletter"}, "action": {"withdraw"}}); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the page's own token: %d\n%s", resp.StatusCode, body)
		}
	})
}

// A link past its lifetime shows a page that offers a new one, and
// changes nothing.
func TestExpiredLink(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		link := e.link(e.jan)
		csrf := e.csrf(link)
		e.clock.Advance(24 * time.Hour)
		resp, body := e.get(link)
		wantStatus(t, "expired", resp, body, http.StatusGone, "Deze link is verlopen", `href="/p"`, "Een nieuwe link aanvragen")
		checkAccessible(t, body)
		before := len(e.view(e.jan).Events)
		resp, body = e.post(link+"/consent", url.Values{"csrf": {csrf}, "purpose": {"newsletter"}, "action": {"withdraw"}})
		wantStatus(t, "POST on an expired link", resp, body, http.StatusGone)
		resp, body = e.get(link + "/export?format=json")
		wantStatus(t, "export on an expired link", resp, body, http.StatusGone)
		if after := len(e.view(e.jan).Events); after != before {
			t.Errorf("%d events recorded", after-before)
		}
		// A second earlier it still worked.
		e.clock.Advance(-time.Second)
		if resp, _ := e.get(link); resp.StatusCode != 200 {
			t.Errorf("just before the end: %d", resp.StatusCode)
		}
	})
}

// A tampered link, an unsubscribe link's token and a confirmation link's
// token are not portal links: 400, nothing shown.
func TestBadLinks(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	link := e.link(e.jan)
	token := link[strings.LastIndex(link, "/")+1:]
	flipped := []byte(token)
	flipped[len(flipped)/2] ^= 'a' ^ 'b'
	claim := unsubscribe.Claim{Subject: e.jan, Purpose: "newsletter", Issued: time.Now()}
	for name, tok := range map[string]string{
		"tampered":    string(flipped),
		"unsubscribe": e.tokens.Issue(claim),
		"confirm":     e.tokens.IssueKind(unsubscribe.KindConfirm, claim),
		"garbage":     "not-a-token",
	} {
		resp, body := e.get(e.url + "/p/" + tok)
		wantStatus(t, name, resp, body, http.StatusBadRequest, "Deze link werkt niet")
		if strings.Contains(body, "jan@example.com") {
			t.Errorf("%s: the page names the address", name)
		}
	}
	resp, body := e.get(e.url + "/p/" + token + "/nothing")
	wantStatus(t, "unknown page", resp, body, http.StatusNotFound, "Deze pagina bestaat niet")
}

// Erasure: only with the box ticked; then the eraser is called for the
// link's subject, by the subject, and the page says what was erased and
// that the address stays blocked.
func TestErasure(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		link := e.link(e.jan)
		resp, body := e.follow(e.post(link+"/erasure", url.Values{"csrf": {e.csrf(link)}}))
		wantStatus(t, "unticked", resp, body, 200, "Vink het vakje aan")
		if calls := e.eraser.called(); len(calls) != 0 {
			t.Fatalf("erased without the box: %v", calls)
		}
		resp, body = e.post(link+"/erasure", url.Values{"csrf": {e.csrf(link)}, "confirm": {"yes"}})
		resp, body = e.follow(resp, body)
		wantStatus(t, "erased", resp, body, 200, "Uw gegevens zijn gewist", "blijft uw adres geblokkeerd")
		checkAccessible(t, body)
		if calls := e.eraser.called(); len(calls) != 1 || calls[0] != "jan@example.com by subject" {
			t.Errorf("eraser calls %v", calls)
		}
		if e.counted("erase") != 1 {
			t.Errorf("erasures counted %v", e.counted("erase"))
		}
		// The link shows the erased page from now on, and takes no form.
		resp, body = e.get(link)
		wantStatus(t, "after", resp, body, 200, "Uw gegevens zijn gewist")
		if strings.Contains(body, "<form") {
			t.Errorf("an erased subject's page has forms")
		}
	})
}

// Without an eraser the portal offers no erasure.
func TestNoEraser(t *testing.T) {
	e := newEnv(t, backends[0].open(t), func(o *portal.Options) { o.Eraser = nil })
	link := e.link(e.jan)
	_, body := e.get(link)
	if strings.Contains(body, "/erasure") {
		t.Errorf("erasure offered without an eraser")
	}
	resp, body := e.post(link+"/erasure", url.Values{"csrf": {e.csrf(link)}, "confirm": {"yes"}})
	wantStatus(t, "POST", resp, body, http.StatusNotFound)
}

// With an https public URL the cookie is Secure and __Host- prefixed.
func TestSecureCookie(t *testing.T) {
	e := newEnv(t, backends[0].open(t), func(o *portal.Options) { o.PublicURL = "https://optin.example" })
	resp, _ := e.get(e.url + "/p")
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"__Host-optinproxy_portal=", "Secure", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if link, _ := e.h.Link(e.jan); !strings.HasPrefix(link, "https://optin.example/p/") {
		t.Errorf("link %s", link)
	}
}

// A link for an address nothing is stored about opens on a page that
// says so.
func TestNothingStored(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	resp, body := e.get(e.link(address(t, "nobody@example.com")))
	wantStatus(t, "unknown", resp, body, http.StatusNotFound, "Wij bewaren geen gegevens over dit e-mailadres")
}
