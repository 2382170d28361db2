package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// burstConfig writes a configuration with the user crm (and sales, when
// sales is set), the outbound webhook a, and b beside it when b is not
// nil; a's secret comes from secretFile when it is set.
func burstConfig(t *testing.T, path string, a, b *hookReceiver, sales bool, secretFile string) {
	t.Helper()
	var w strings.Builder
	w.WriteString("smtp:\n  trusted_networks: []\n  users:\n")
	for _, u := range []string{"crm", "sales"} {
		if u == "sales" && !sales {
			continue
		}
		fmt.Fprintf(&w, "    - {username: %s, password_hash: '%s', from_domains: [shop.example]}\n", u, passwordHash(t, u+"-pw"))
	}
	w.WriteString("webhooks:\n  outbound:\n")
	if secretFile != "" {
		fmt.Fprintf(&w, "    - {url: %q, secret_file: %q}\n", a.srv.URL, secretFile)
	} else {
		fmt.Fprintf(&w, "    - {url: %q, secret: %q}\n", a.srv.URL, hookSecret)
	}
	if b != nil {
		fmt.Fprintf(&w, "    - {url: %q, secret: %q}\n", b.srv.URL, hookSecret)
	}
	if err := os.WriteFile(path, []byte(w.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reloadsLogged counts the reloads that worked, and those of them that
// found n users.
func reloadsLogged(s *server, users int) (all, withUsers int) {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	for _, m := range s.logs.seen {
		if m["msg"] == "configuration reloaded" {
			all++
			if m["users"] == float64(users) {
				withUsers++
			}
		}
	}
	return all, withUsers
}

// TestReloadBurstWhileRelaying: forty reloads, each adding or removing a
// webhook target, then a burst of SIGHUPs sent as fast as they go, while
// three SMTP sessions relay and grants are delivered to the target that
// stays. Every message accepted is relayed once, every grant reaches the
// target, and the server holds no more goroutines after the reloads than
// after the first two (a removed target's workers end).
func TestReloadBurstWhileRelaying(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "optinproxy.yaml")
	a, b := newHookReceiver(t), newHookReceiver(t)
	burstConfig(t, path, a, b, false, "")
	s := startServe(t, dir, "OPTINPROXY_CONFIG="+path)
	cli := cliOf(t, dir, s)
	for i := range 3 {
		if r := cli("consent", "grant", fmt.Sprintf("r%d@example.com", i), "newsletter", "--source", "form"); r.code != 0 {
			t.Fatalf("grant: %d %s", r.code, r.stderr)
		}
	}
	reload := func(n int, withB bool) {
		t.Helper()
		if withB {
			burstConfig(t, path, a, b, false, "")
		} else {
			burstConfig(t, path, a, nil, false, "")
		}
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, fmt.Sprintf("reload %d", n), func() bool { all, _ := reloadsLogged(s, 1); return all >= n })
	}
	// Warm up what the burst uses (the targets' connections, a session)
	// so that the count before holds it too.
	if r := cli("consent", "grant", "warm@example.com", "newsletter", "--source", "form"); r.code != 0 {
		t.Fatalf("grant: %d %s", r.code, r.stderr)
	}
	a.waitFor("the warm-up grant", is("consent.granted", "warm@example.com"))
	b.waitFor("the warm-up grant", is("consent.granted", "warm@example.com"))
	if c, err := login(t, s.smtpAddr, "crm", "crm-pw"); err != nil || mailOn(c, "r0@example.com", "newsletter", "warm") != nil {
		t.Fatalf("the warm-up message: %v", err)
	} else {
		c.Quit()
	}
	reload(1, false)
	reload(2, true)
	before := metric(t, s, "go_goroutines")

	const sessions, perSession = 3, 10
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			c, err := login(t, s.smtpAddr, "crm", "crm-pw")
			if err != nil {
				t.Error(err)
				return
			}
			for j := range perSession {
				if err := mailOn(c, fmt.Sprintf("r%d@example.com", i), "newsletter", fmt.Sprintf("burst-%d-%d", i, j)); err != nil {
					t.Errorf("session %d, message %d: %v", i, j, err)
				}
			}
			c.Quit()
		})
	}
	grants := make(chan string, 10)
	wg.Go(func() {
		defer close(grants)
		for i := range 10 {
			email := fmt.Sprintf("g%d@example.com", i)
			if r := runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr}, "consent", "grant", email, "newsletter", "--source", "form"); r.code != 0 {
				t.Errorf("grant %s: %d %s", email, r.code, r.stderr)
				continue
			}
			grants <- email
		}
	})
	for n := 3; n <= 42; n++ {
		reload(n, n%2 == 0)
	}
	for range 50 {
		s.cmd.Process.Signal(syscall.SIGHUP)
	}
	wg.Wait()
	// The last reload is the only one that finds sales.
	burstConfig(t, path, a, b, true, "")
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the last reload", func() bool { _, n := reloadsLogged(s, 2); return n > 0 })

	for i := range sessions {
		for j := range perSession {
			id := fmt.Sprintf("<burst-%d-%d@shop.example>", i, j)
			n := 0
			for _, m := range mailsTo(t, dir, fmt.Sprintf("r%d@example.com", i)) {
				if strings.Contains(string(m), id) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s relayed %d times, want once", id, n)
			}
		}
	}
	for email := range grants {
		a.waitFor("the grant of "+email, is("consent.granted", email))
	}
	if c, err := login(t, s.smtpAddr, "sales", "sales-pw"); err != nil {
		t.Errorf("the user of the last reload: %v", err)
	} else {
		c.Quit()
	}
	if all, _ := reloadsLogged(s, 0); all < 43 {
		t.Errorf("%d reloads logged, want at least 43", all)
	}
	// What the sessions and the CLI held has ended: wait until the count
	// settles at most a little above where it was, or fail naming it.
	var after float64
	for range 100 {
		if after = metric(t, s, "go_goroutines"); after <= before+5 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after > before+5 {
		t.Errorf("goroutines: %v after 2 reloads, %v after %d", before, after, 43)
	}
	t.Logf("goroutines: %v after 2 reloads, %v after 43", before, after)
	if metric(t, s, `optinproxy_config_reloads_total{result="error"}`) != 0 {
		t.Error("a reload of the burst was refused")
	}
}

// TestReloadSecretFileGone: a configuration whose webhook secret_file is
// missing, or a folder, is refused whole with the key and the file
// named; the target keeps the secret it had and still delivers. So is a
// configuration file that is gone.
func TestReloadSecretFileGone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "optinproxy.yaml")
	secret := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secret, []byte(hookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newHookReceiver(t)
	burstConfig(t, path, a, nil, false, secret)
	s := startServe(t, dir, "OPTINPROXY_CONFIG="+path)
	cli := cliOf(t, dir, s)
	for i, bad := range []func(){
		func() { os.Remove(secret) },
		func() { os.Mkdir(secret, 0o700) },
	} {
		bad()
		burstConfig(t, path, a, nil, true, secret)
		problem := s.hup(t, "configuration reload: problem")
		if problem["key"] != "webhooks.outbound[0].secret_file" || !strings.Contains(fmt.Sprint(problem["problem"]), secret) {
			t.Errorf("case %d: the problem logged: %v", i, problem)
		}
		s.logs.waitFor(t, "configuration not reloaded; the running configuration stays", 20*time.Second)
		if _, err := login(t, s.smtpAddr, "sales", "sales-pw"); err == nil {
			t.Errorf("case %d: the refused configuration's user logged in", i)
		}
		email := fmt.Sprintf("after%d@example.com", i)
		if r := cli("consent", "grant", email, "newsletter", "--source", "form"); r.code != 0 {
			t.Fatalf("grant: %d %s", r.code, r.stderr)
		}
		a.waitFor("the grant after the refused reload", is("consent.granted", email))
	}
	// The configuration file itself gone (moved away): refused too.
	os.Remove(path)
	s.hup(t, "configuration not reloaded; the running configuration stays")
	if c, err := login(t, s.smtpAddr, "crm", "crm-pw"); err != nil || mailOn(c, "jan@example.com", "transactional", "after-gone") != nil {
		t.Errorf("the running configuration after its file went: %v", err)
	}
	if n := metric(t, s, `optinproxy_config_reloads_total{result="error"}`); n != 3 {
		t.Errorf("reloads refused: %v, want 3", n)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bad != 0 {
		t.Errorf("%d deliveries with a bad signature", a.bad)
	}
}

// TestReloadRemovesPendingPurpose: a reload that removes the purpose of
// a pending double opt-in leaves its link saying the sign-up is gone
// (410), granting nothing; the purpose back, the same link confirms.
func TestReloadRemovesPendingPurpose(t *testing.T) {
	dir := t.TempDir()
	both := `purposes:
  newsletter: {basis: consent, category: marketing, retention: 730d, double_opt_in: true, description: "Our monthly newsletter"}
  promotions: {basis: consent, category: marketing, retention: 365d, double_opt_in: true, description: "Our offers"}
notices:
  from: privacy@shop.example
`
	d := startPublic(t, dir, both)
	var ans struct{ Consent struct{ Status string } }
	d.api(t, "PUT", "/api/v1/subjects/jan%40example.com/consents/promotions", "application/json", `{"source": "form", "evidence": {"ip": "192.0.2.7"}}`, &ans)
	if ans.Consent.Status != "pending" {
		t.Fatalf("sign-up: %+v", ans)
	}
	_, _, link := mailedLink(t, dir, "jan@example.com")

	cfg := filepath.Join(dir, "optinproxy.yaml")
	os.WriteFile(cfg, []byte(strings.Replace(both, "  promotions: {basis: consent, category: marketing, retention: 365d, double_opt_in: true, description: \"Our offers\"}\n", "", 1)), 0o600)
	d.hup(t, "configuration reloaded")
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Errorf("GET of the link of a removed purpose: %d, want 410", resp.StatusCode)
	}
	if code, body := post(t, link, "", nil, nil); code != http.StatusGone || strings.Contains(body, "bevestigd") {
		t.Errorf("POST of the link of a removed purpose: %d\n%s", code, body)
	}
	var v struct{ Consents []map[string]any }
	d.api(t, "GET", "/api/v1/subjects/jan%40example.com", "", "", &v)
	for _, c := range v.Consents {
		if c["purpose"] == "promotions" && c["status"] != "pending" {
			t.Errorf("the removed purpose's record after its link was used: %v", c)
		}
	}

	os.WriteFile(cfg, []byte(both), 0o600)
	d.hup(t, "configuration reloaded")
	if code, body := post(t, link, "", nil, nil); code != 200 {
		t.Errorf("POST once the purpose is back: %d\n%s", code, body)
	}
}

// TestReloadDuringShutdown: SIGHUP sent again and again while the server
// stops does not end it by the signal's default action: it exits 0
// after "shutting down". (A SIGHUP the kernel hands over before the
// SIGTERM, lower signals first, may still reload once.)
func TestReloadDuringShutdown(t *testing.T) {
	for round := range 5 {
		dir := t.TempDir()
		s := startServe(t, dir)
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		sent := 0
	hups:
		for range 100000 {
			select {
			case <-s.done:
				break hups
			default:
				if s.cmd.Process.Signal(syscall.SIGHUP) == nil {
					sent++
				}
			}
		}
		<-s.done
		if st := s.cmd.ProcessState; !st.Exited() || st.ExitCode() != 0 {
			t.Fatalf("round %d: after SIGTERM and %d SIGHUPs the server ended with %v", round, sent, st)
		}
		if !slices.Contains(s.logs.messages(), "shutting down") {
			t.Errorf("round %d: no shutdown logged", round)
		}
	}
}
