package portal_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/internal/testtools"
	"optinproxy/optin"
	"optinproxy/portal"
	"optinproxy/unsubscribe"
)

var testPurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Retention: 730 * 24 * time.Hour,
		Unsubscribe: true, Description: "Onze maandelijkse nieuwsbrief"},
	"events": {Name: "events", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, DoubleOptIn: true,
		Unsubscribe: true, Description: "Uitnodigingen voor evenementen"},
	"offers": {Name: "offers", Basis: optin.BasisLegitimateInterests, Category: optin.CategoryMarketing, Unsubscribe: true},
	"orders": {Name: "orders", Basis: optin.BasisContract, Category: optin.CategoryTransactional,
		Description: "Berichten over uw bestellingen"},
}

var secret = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

// backends are the two stores the portal's tests run on.
var backends = []struct {
	name string
	open func(t *testing.T) optin.Store
}{
	{"file", func(t *testing.T) optin.Store { return teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db")) }},
	{"redis", func(t *testing.T) optin.Store { return teststore.Redis(t, redistest.Start(t)) }},
}

// eachStore runs f on a portal over each store.
func eachStore(t *testing.T, f func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, newEnv(t, b.open(t))) })
	}
}

// env is a portal on a real store behind a real HTTP server, with a
// browser-like client: it keeps cookies and does not follow redirects.
type env struct {
	t      *testing.T
	url    string
	h      *portal.Handler
	ledger *optin.Ledger
	tokens *unsubscribe.Tokens
	mail   *mailbox
	eraser *eraser
	clock  *testtools.Clock
	reg    *prometheus.Registry
	client *http.Client
	jan    optin.Address
}

func newEnv(t *testing.T, store optin.Store, adjust ...func(*portal.Options)) *env {
	t.Helper()
	ledger, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: testPurposes, PolicyVersion: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := unsubscribe.NewTokens(secret)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{t: t, url: srv.URL, ledger: ledger, tokens: tokens, mail: newMailbox(), clock: testtools.NewClock(time.Now()),
		reg: prometheus.NewRegistry(), jan: address(t, "jan@example.com")}
	e.eraser = &eraser{ledger: ledger}
	o := portal.Options{Tokens: tokens, Ledger: ledger, PublicURL: srv.URL, Secret: secret, Mailer: e.mail, Eraser: e.eraser,
		PolicyVersion: "2026-01", Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Metrics: e.reg, Now: e.clock.Now}
	for _, f := range adjust {
		f(&o)
	}
	e.h, err = portal.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.h.Close)
	mux.Handle("/p", e.h)
	mux.Handle("/p/", e.h)
	e.client = e.newClient()
	if _, err := ledger.Grant(context.Background(), e.jan, "newsletter", optin.ConsentChange{Source: optin.SourceForm,
		Evidence: optin.Evidence{IP: "192.0.2.7", Text: "Ja, stuur mij de nieuwsbrief"}}); err != nil {
		t.Fatal(err)
	}
	return e
}

// newClient is another browser: its own cookies.
func (e *env) newClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func address(t testing.TB, s string) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// link is a fresh portal link of a, as the admin API makes them.
func (e *env) link(a optin.Address) string {
	l, _ := e.h.Link(a)
	return l
}

// do sends one request with c; header holds name, value pairs.
func (e *env) do(c *http.Client, method, link string, form url.Values, header ...string) (*http.Response, string) {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, link, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(b)
}

func (e *env) get(link string, header ...string) (*http.Response, string) {
	e.t.Helper()
	return e.do(e.client, http.MethodGet, link, nil, header...)
}

// post sends a form as a browser on the page does: same-origin.
func (e *env) post(link string, form url.Values, header ...string) (*http.Response, string) {
	e.t.Helper()
	return e.do(e.client, http.MethodPost, link, form, append([]string{"Sec-Fetch-Site", "same-origin", "Origin", e.url}, header...)...)
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf opens a page and returns the CSRF token of its forms.
func (e *env) csrf(link string) string {
	e.t.Helper()
	resp, body := e.get(link)
	m := csrfPattern.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		e.t.Fatalf("GET %s: %d, no CSRF token:\n%s", link, resp.StatusCode, body)
	}
	return m[1]
}

// follow GETs where a 303 points.
func (e *env) follow(resp *http.Response, body string) (*http.Response, string) {
	e.t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("status %d, want 303:\n%s", resp.StatusCode, body)
	}
	return e.get(e.url + resp.Header.Get("Location"))
}

func (e *env) view(a optin.Address) *optin.SubjectView {
	e.t.Helper()
	v, err := e.ledger.Store().Subject(context.Background(), a, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) consent(a optin.Address, purpose string) *optin.Consent {
	for _, c := range e.view(a).Consents {
		if c.Purpose == purpose {
			return &c
		}
	}
	return nil
}

// counted reads optinproxy_portal_actions_total{action}.
func (e *env) counted(action string) float64 {
	e.t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "optinproxy_portal_actions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == action {
				return m.GetCounter().GetValue()
			}
		}
	}
	e.t.Fatalf("no optinproxy_portal_actions_total{action=%q}", action)
	return 0
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

// mailbox records the links the portal mails.
type mailbox struct {
	mu    sync.Mutex
	mails []mail
	got   chan mail
}

type mail struct {
	to      optin.Address
	link    string
	expires time.Time
	lang    string
}

func newMailbox() *mailbox { return &mailbox{got: make(chan mail, 64)} }

func (m *mailbox) SendPortalLink(_ context.Context, to optin.Address, link string, expires time.Time, lang string) error {
	ml := mail{to: to, link: link, expires: expires, lang: lang}
	m.mu.Lock()
	m.mails = append(m.mails, ml)
	m.mu.Unlock()
	m.got <- ml
	return nil
}

func (m *mailbox) sent() []mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mail(nil), m.mails...)
}

// next waits for the next mail: it is sent off the request path.
func (m *mailbox) next(t testing.TB) mail {
	t.Helper()
	select {
	case ml := <-m.got:
		return ml
	case <-time.After(30 * time.Second):
		t.Fatal("no portal link was mailed")
		return mail{}
	}
}

// eraser records the erasures asked for and carries them out with the
// ledger's erasure, as the server's does.
type eraser struct {
	ledger *optin.Ledger
	mu     sync.Mutex
	calls  []string // address and actor
}

func (x *eraser) Erase(ctx context.Context, a optin.Address, actor string) error {
	x.mu.Lock()
	x.calls = append(x.calls, a.String()+" by "+actor)
	x.mu.Unlock()
	_, err := x.ledger.Erase(ctx, a, optin.ErasureRequest{Actor: actor})
	return err
}

func (x *eraser) called() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.calls...)
}
