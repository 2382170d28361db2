package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// check-config warns when smtp.blocked_dsn is on but some clients can get
// no DSN: a user without from_domains (named), or any trusted network
// (whose clients have no user). The configuration is still ok.
func TestCheckConfigDSNWarnings(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := "  users:\n" +
		"    - {username: crm, password_hash: '" + string(h) + "', from_domains: [shop.example]}\n" +
		"    - {username: bulk-mailer, password_hash: '" + string(h) + "'}\n"
	const (
		userWarning    = `smtp.blocked_dsn is on but user "bulk-mailer" has no from_domains`
		trustedWarning = "smtp.blocked_dsn is on but smtp.trusted_networks is not empty"
	)
	for _, c := range []struct {
		name      string
		smtp      string
		want      []string
		wantNot   []string
		wantNotIn string // a user that must not be named
	}{
		{"user without from_domains", "  blocked_dsn: true\n  trusted_networks: []\n" + users,
			[]string{userWarning}, []string{trustedWarning, "includes loopback"}, `"crm"`},
		{"users beside loopback trusted", users,
			[]string{"smtp.users are configured but smtp.trusted_networks includes loopback (127.0.0.0/8, ::1/128): clients on this machine relay without AUTH"}, nil, ""},
		{"default trusted networks", "  blocked_dsn: true\n",
			[]string{trustedWarning}, []string{"has no from_domains"}, ""},
		{"nothing to warn of", "  blocked_dsn: true\n  trusted_networks: []\n  users:\n    - {username: crm, password_hash: '" + string(h) + "', from_domains: [shop.example]}\n",
			nil, []string{"blocked_dsn"}, ""},
		{"DSNs off", "  blocked_dsn: false\n" + users,
			nil, []string{"blocked_dsn"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "optinproxy.yaml")
			if err := os.WriteFile(path, []byte("smtp:\n"+c.smtp), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runCmd(t, dir, "", nil, "check-config", path)
			if r.code != 0 || !strings.Contains(r.stdout, ": ok") {
				t.Fatalf("exit %d, want 0 and ok:\n%s%s", r.code, r.stdout, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stdout, "warning: "+w) {
					t.Errorf("output lacks the warning %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(r.stdout, w) {
					t.Errorf("output says %q:\n%s", w, r.stdout)
				}
			}
			if c.wantNotIn != "" && strings.Contains(r.stdout, c.wantNotIn) {
				t.Errorf("output names %s:\n%s", c.wantNotIn, r.stdout)
			}
		})
	}
}

// A purposes block adds to the built-in purposes: naming only promotions
// keeps newsletter and transactional, and check-config is quiet about
// it; enabled: false removes one, with a warning for transactional and
// an error, at its line, for a key still naming a removed purpose.
func TestCheckConfigPurposes(t *testing.T) {
	dir := t.TempDir()
	check := func(text string) result {
		t.Helper()
		path := filepath.Join(dir, "optinproxy.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return runCmd(t, dir, "", nil, "check-config", path)
	}
	r := check("purposes:\n  promotions: {basis: consent, category: marketing, description: Offers}\n")
	if r.code != 0 || !strings.Contains(r.stdout, ": ok") || strings.Contains(r.stdout, "purposes") {
		t.Errorf("promotions only: exit %d, want 0, ok and no word on purposes:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = check("purposes:\n  transactional: {enabled: false}\n")
	if want := "warning: purposes.transactional is disabled: mail naming it in X-Optin-Purpose is refused"; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("transactional disabled: exit %d, want 0 and %q:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	r = check("purposes:\n  newsletter:\n    enabled: false\nwebhooks:\n  mailchimp:\n    secret: abcdefghijklmnopqrstuvwxyz\n    lists: {abc123: newsletter}\n")
	for _, want := range []string{
		`optinproxy.yaml:7: webhooks.mailchimp.lists.abc123: purpose "newsletter" is disabled by purposes.newsletter.enabled: false (line 3)`,
		`policy.default_purpose: purpose "newsletter" is disabled by purposes.newsletter.enabled: false (line 3)`,
	} {
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("newsletter disabled but named: exit %d, want 2 and %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
}

// TestPurposesAddedToBuiltins: a server whose file names only promotions
// still relays transactional mail without consent and knows the
// newsletter; a purpose disabled from the environment is unknown to it.
func TestPurposesAddedToBuiltins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "optinproxy.yaml")
	if err := os.WriteFile(path, []byte("policy: {default_purpose: promotions}\npurposes:\n  promotions: {basis: consent, category: marketing}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, "OPTINPROXY_CONFIG="+path)
	send := func(purpose string) (int, string) {
		return swaksSend(t, s.smtpAddr, "jan@example.com", "--header", "X-Optin-Purpose: "+purpose, "--body", "Beste Jan")
	}
	if code, out := send("transactional"); code != 0 || !strings.Contains(out, "relayed 1") {
		t.Errorf("transactional, kept beside promotions: exit %d\n%s", code, out)
	}
	for _, p := range []string{"promotions", "newsletter"} {
		if code, out := send(p); code == 0 || !strings.Contains(out, "no_consent") {
			t.Errorf("%s without consent: exit %d, want no_consent\n%s", p, code, out)
		}
	}
	s.cmd.Process.Kill()
	<-s.done

	s = startServe(t, dir, "OPTINPROXY_CONFIG="+path, "OPTINPROXY_PURPOSES_NEWSLETTER_ENABLED=false")
	if code, out := swaksSend(t, s.smtpAddr, "jan@example.com", "--header", "X-Optin-Purpose: newsletter"); code == 0 || !strings.Contains(out, `Unknown purpose "newsletter"`) {
		t.Errorf("newsletter disabled: exit %d, want the unknown-purpose reply\n%s", code, out)
	}
}

// TestCheckConfigAsDocumented: the check-config session that
// docs/configuration.md shows is what the binary prints: the file it
// shows, the variable, every problem line and the exit status.
func TestCheckConfigAsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, session, ok := strings.Cut(string(raw), "$ cat optinproxy.yaml\n")
	if !ok {
		t.Fatal("docs/configuration.md shows no check-config session")
	}
	session, _, _ = strings.Cut(session, "\n```")
	file, rest, _ := strings.Cut(session, "$ OPTINPROXY_SMTP_LISTEN=2525 optinproxy check-config optinproxy.yaml\n")
	output, status, ok := strings.Cut(rest, "$ echo $?\n")
	if !ok || file == "" {
		t.Fatalf("the session is not file, command, output, status:\n%s", session)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "optinproxy.yaml"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, dir, "", []string{"OPTINPROXY_SMTP_LISTEN=2525"}, "check-config", "optinproxy.yaml")
	if got := strconv.Itoa(r.code); got != strings.TrimSpace(status) {
		t.Errorf("exit %s, the document says %s", got, strings.TrimSpace(status))
	}
	if r.stdout+r.stderr != output {
		t.Errorf("check-config printed:\n%s%s\nthe document shows:\n%s", r.stdout, r.stderr, output)
	}
}
