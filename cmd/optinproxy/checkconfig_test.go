package main

import (
	"os"
	"path/filepath"
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

// A purposes block naming only a new purpose drops the built-in ones:
// check-config names each one dropped and the lines that keep it.
func TestCheckConfigPurposesLeftOut(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "optinproxy.yaml")
	os.WriteFile(path, []byte("policy: {default_purpose: promotions}\npurposes:\n  promotions: {basis: consent, category: marketing, description: Offers}\n  newsletter: {basis: consent, category: marketing}\n"), 0o600)
	r := runCmd(t, dir, "", nil, "check-config", path)
	want := "warning: purposes does not list the built-in transactional, so it is not configured: mail and API calls naming it are refused; the purposes listed are all there are, so to keep it add to purposes: transactional: {basis: contract, category: transactional}"
	if r.code != 0 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, ": ok") {
		t.Errorf("exit %d, want 0 and %q in:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "built-in newsletter") {
		t.Errorf("newsletter is listed, yet named as left out:\n%s", r.stdout)
	}
}
