package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// reloadConfig is the configuration the reload test writes: users by
// name and password, whether the extra purpose "promotions" is set, the
// Dutch footer's text, and the outbound webhook's URL; extra is appended
// to the smtp section.
type reloadConfig struct {
	users      map[string]string
	promotions bool
	footer     string
	hook       string
	smtpExtra  string
}

func (c reloadConfig) write(t *testing.T, path string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("smtp:\n  trusted_networks: []\n" + c.smtpExtra + "  users:\n")
	for name, pw := range c.users {
		fmt.Fprintf(&b, "    - {username: %s, password_hash: '%s', from_domains: [shop.example]}\n", name, passwordHash(t, pw))
	}
	if c.promotions {
		// The whole set, so that it reads the same whether a purposes
		// block replaces the built-in purposes or adds to them.
		b.WriteString(`purposes:
  newsletter: {basis: consent, category: marketing, retention: 730d, description: Our monthly newsletter}
  transactional: {basis: contract, category: transactional}
  promotions: {basis: consent, category: marketing, retention: 365d}
`)
	}
	b.WriteString("policy:\n  role_addresses: {add: [webteam]}\n")
	fmt.Fprintf(&b, "unsubscribe:\n  templates:\n    nl: {text: %q}\n", c.footer+" {{unsubscribe_url}}")
	fmt.Fprintf(&b, "webhooks:\n  outbound:\n    - {url: %q, secret: %q}\n", c.hook, hookSecret)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// passwordHashes keeps one hash a password: a hash made again is
// another, which a reload takes for a changed password.
var passwordHashes sync.Map

func passwordHash(t *testing.T, pw string) string {
	t.Helper()
	if h, ok := passwordHashes.Load(pw); ok {
		return h.(string)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := passwordHashes.LoadOrStore(pw, string(h))
	return h2.(string)
}

// withoutRoles drops the role_addresses line: the configuration before
// the reload knows webteam@ as no role address.
func withoutRoles(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, bytes.Replace(b, []byte("policy:\n  role_addresses: {add: [webteam]}\n"), nil, 1), 0o600)
}

// login opens an SMTP session and logs in.
func login(t *testing.T, addr, user, pw string) (*smtp.Client, error) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("crm.test"); err != nil {
		t.Fatal(err)
	}
	return c, c.Auth(sasl.NewPlainClient("", user, pw))
}

// mailOn sends one message on c; the error is the server's reply when it
// refused.
func mailOn(c *smtp.Client, to, purpose, id string) error {
	msg := "From: <crm@shop.example>\r\nTo: <" + to + ">\r\nSubject: Hello\r\nMessage-ID: <" + id + "@shop.example>\r\n" +
		"X-Optin-Purpose: " + purpose + "\r\n\r\nHello.\r\n"
	return c.SendMail("crm@shop.example", []string{to}, strings.NewReader(msg))
}

// httpGet returns the body of a 200 answer.
func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", u, resp.StatusCode, b)
	}
	return string(b)
}

// hup sends the server SIGHUP and waits for the reload's last log line.
func (s *server) hup(t *testing.T, want string) map[string]any {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	return s.logs.waitFor(t, want, 20*time.Second)
}

func wantReply(t *testing.T, what string, err error, code int, text string) {
	t.Helper()
	se, ok := err.(*smtp.SMTPError)
	if !ok || se.Code != code || !strings.Contains(se.Message, text) {
		t.Errorf("%s: got %v, want %d ...%s...", what, err, code, text)
	}
}

// TestReloadOnSIGHUP is an operator changing the configuration of a
// running proxy and sending SIGHUP: the SMTP session under way finishes,
// the users, purposes, role addresses, footer and webhook targets change
// for what comes next, a key that needs a restart is named, and a broken
// file changes nothing and says where it is broken.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "optinproxy.yaml")
	hookA, hookB := newHookReceiver(t), newHookReceiver(t)
	v1 := reloadConfig{users: map[string]string{"crm": "crm-pw"}, footer: "Afmelden-een:", hook: hookA.srv.URL}
	v1.write(t, path)
	withoutRoles(t, path)
	s := startServe(t, dir, "OPTINPROXY_CONFIG="+path)
	cli := cliOf(t, dir, s)
	grant := func(email, purpose string) {
		t.Helper()
		if r := cli("consent", "grant", email, purpose, "--source", "form"); r.code != 0 {
			t.Fatalf("grant %s %s: %d %s", email, purpose, r.code, r.stderr)
		}
	}

	// Before: the footer of v1, the webhook at A, webteam@ no role.
	grant("jan@example.com", "newsletter")
	c, err := login(t, s.smtpAddr, "crm", "crm-pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := mailOn(c, "jan@example.com", "newsletter", "v1"); err != nil {
		t.Fatal(err)
	}
	if got := mailsTo(t, dir, "jan@example.com"); len(got) != 1 || !bytes.Contains(got[0], []byte("Afmelden-een:")) {
		t.Fatalf("copies before the reload: %q", got)
	}
	hookA.waitFor("the grant before the reload", is("consent.granted", "jan@example.com"))
	wantReply(t, "webteam@ before the reload", mailOn(c, "webteam@bakkerij.example", "newsletter", "role-v1"), 550, "no_consent")
	wantReply(t, "promotions before the reload", mailOn(c, "jan@example.com", "promotions", "promo-v1"), 550, `Unknown purpose "promotions"`)

	// A transaction under way: MAIL and RCPT now, DATA after the reload.
	if err := c.Mail("crm@shop.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("piet@example.com", nil); err != nil {
		t.Fatal(err)
	}

	v2 := reloadConfig{users: map[string]string{"sales": "sales-pw"}, promotions: true, footer: "Afmelden-twee:", hook: hookB.srv.URL,
		smtpExtra: "  max_recipients: 50\n"}
	v2.write(t, path)
	restart := s.hup(t, "configuration reload: this key changed and needs a restart; its running value stays")
	if restart["key"] != "smtp.max_recipients" {
		t.Errorf("needs a restart: key %v, want smtp.max_recipients", restart["key"])
	}
	s.logs.waitFor(t, "configuration reloaded", 20*time.Second)

	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "From: <crm@shop.example>\r\nSubject: Order\r\nMessage-ID: <under-way@shop.example>\r\nX-Optin-Purpose: transactional\r\n\r\nYour order.\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("the transaction under way during the reload: %v", err)
	}
	if got := mailsTo(t, dir, "piet@example.com"); len(got) != 1 {
		t.Errorf("piet got %d copies of the message sent across the reload, want 1", len(got))
	}
	wantReply(t, "the removed user's session, next MAIL", c.Mail("crm@shop.example", nil), 530, "no longer configured")
	if _, err := login(t, s.smtpAddr, "crm", "crm-pw"); err == nil {
		t.Error("the removed user logged in")
	} else {
		wantReply(t, "AUTH of the removed user", err, 535, "")
	}
	c2, err := login(t, s.smtpAddr, "sales", "sales-pw")
	if err != nil {
		t.Fatalf("the added user: %v", err)
	}
	grant("marie@example.com", "promotions") // the API knows the new purpose too
	if err := mailOn(c2, "marie@example.com", "promotions", "promo-v2"); err != nil {
		t.Errorf("the added purpose: %v", err)
	}
	// The unsubscribe page of the new purpose offers it by name.
	r := runCmd(t, dir, "", []string{"OPTINPROXY_CONFIG=" + path}, "unsubscribe-url", "marie@example.com", "--purpose", "promotions")
	_, token, ok := strings.Cut(strings.TrimSpace(r.stdout), "/u/")
	if r.code != 0 || !ok {
		t.Fatalf("unsubscribe-url: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if page := httpGet(t, "http://"+s.httpAddr+"/u/"+token); !strings.Contains(page, "<strong>promotions</strong>") || !strings.Contains(page, `id="choice-this"`) {
		t.Errorf("the unsubscribe page of the added purpose does not offer it:\n%s", page)
	}
	if err := mailOn(c2, "webteam@bakkerij.example", "newsletter", "role-v2"); err != nil {
		t.Errorf("the added role address: %v", err)
	}
	if err := mailOn(c2, "jan@example.com", "newsletter", "v2"); err != nil {
		t.Fatal(err)
	}
	var footers []string
	for _, m := range mailsTo(t, dir, "jan@example.com") {
		if bytes.Contains(m, []byte("<v2@shop.example>")) {
			footers = append(footers, fmt.Sprint(bytes.Contains(m, []byte("Afmelden-twee:")), bytes.Contains(m, []byte("Afmelden-een:"))))
		}
	}
	if len(footers) != 1 || footers[0] != "true false" {
		t.Errorf("the copy after the reload has the new footer, not the old: %v", footers)
	}
	grant("kees@example.com", "newsletter")
	hookB.waitFor("the grant after the reload, at the added target", is("consent.granted", "kees@example.com"))
	if n := hookA.count(is("consent.granted", "kees@example.com")); n != 0 {
		t.Errorf("the removed target got the grant after the reload %d times", n)
	}

	// The purpose removed again: its mail gets the unknown-purpose reply.
	v3 := v2
	v3.promotions, v3.smtpExtra = false, ""
	v3.write(t, path)
	s.hup(t, "configuration reloaded")
	wantReply(t, "the removed purpose", mailOn(c2, "marie@example.com", "promotions", "promo-v3"), 550, `Unknown purpose "promotions"`)

	// A broken file: every problem at its line, nothing changes.
	b, _ := os.ReadFile(path)
	broken := strings.Replace(string(b), "  trusted_networks: []\n", "  trusted_networks: []\n  max_recipent: 5\n", 1)
	os.WriteFile(path, []byte(broken), 0o600)
	problem := s.hup(t, "configuration reload: problem")
	if problem["key"] != "smtp.max_recipent" || problem["line"] != 3.0 || problem["file"] != path {
		t.Errorf("the problem logged: %v, want smtp.max_recipent at line 3 of %s", problem, path)
	}
	s.logs.waitFor(t, "configuration not reloaded; the running configuration stays", 20*time.Second)
	if _, err := login(t, s.smtpAddr, "sales", "sales-pw"); err != nil {
		t.Errorf("after the broken reload, the user in force: %v", err)
	}
	if err := mailOn(c2, "jan@example.com", "newsletter", "v3"); err != nil {
		t.Errorf("after the broken reload: %v", err)
	}
	for series, want := range map[string]float64{
		`optinproxy_config_reloads_total{result="ok"}`:    2,
		`optinproxy_config_reloads_total{result="error"}`: 1,
	} {
		if got := metric(t, s, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if metric(t, s, "optinproxy_config_last_reload_success_timestamp_seconds") == 0 {
		t.Error("no time of the last reload that worked")
	}
}

// TestReloadAddsFirstTarget: a server started without outbound targets
// announces no erasures; a reload that adds the first target puts it in
// force but says that the announcing of erasures waits for a restart.
func TestReloadAddsFirstTarget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "optinproxy.yaml")
	hook := newHookReceiver(t)
	c := reloadConfig{users: map[string]string{"crm": "crm-pw"}, footer: "Afmelden:", hook: hook.srv.URL}
	c.write(t, path)
	b, _ := os.ReadFile(path)
	before, _, ok := strings.Cut(string(b), "webhooks:\n")
	if !ok {
		t.Fatalf("no webhooks section in\n%s", b)
	}
	os.WriteFile(path, []byte(before), 0o600)
	s := startServe(t, dir, "OPTINPROXY_CONFIG="+path)

	c.write(t, path)
	warn := s.hup(t, "configuration reload: whether erasures are announced to outbound targets changes only with a restart")
	if warn["key"] != "webhooks.outbound" || warn["announced"] != false {
		t.Errorf("the warning: %v, want key webhooks.outbound, announced false", warn)
	}
	s.logs.waitFor(t, "configuration reloaded", 20*time.Second)
	if r := cliOf(t, dir, s)("consent", "grant", "jan@example.com", "newsletter", "--source", "form"); r.code != 0 {
		t.Fatalf("grant: %d %s", r.code, r.stderr)
	}
	hook.waitFor("the grant at the target the reload added", is("consent.granted", "jan@example.com"))
}
