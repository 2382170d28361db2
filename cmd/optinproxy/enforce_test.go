package main

import (
	"path/filepath"
	"strings"
	"testing"

	"optinproxy/internal/redistest"
	"optinproxy/internal/testtools"
)

// swaksSend sends one message with the real swaks client and returns its
// exit code and the transcript.
func swaksSend(t *testing.T, addr, to string, args ...string) (int, string) {
	t.Helper()
	return testtools.Swaks(t, append([]string{"--server", addr, "--helo", "crm.test", "--timeout", "10s",
		"--from", "crm@shop.example", "--to", to}, args...)...)
}

// TestEnforcementEndToEnd is a marketer's day on each store: a newsletter
// to someone who never opted in is refused; after a grant through the CLI
// it goes out; after the withdrawal it is refused again; transactional
// mail still goes; each decision is in the subject's history, and the
// chain verifies.
func TestEnforcementEndToEnd(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			dir := t.TempDir()
			s := serveOn(t, store, dir)
			cli := cliOf(t, dir, s)
			outbox := func() int {
				files, _ := filepath.Glob(filepath.Join(dir, "data/outbox/*.eml"))
				return len(files)
			}
			newsletter := []string{"--header", "Subject: Lente-aanbieding", "--header", "X-Optin-Purpose: newsletter", "--body", "Beste Jan"}

			code, out := swaksSend(t, s.smtpAddr, "jan@example.com", newsletter...)
			if code == 0 || !strings.Contains(out, "550 5.7.1") || !strings.Contains(out, "no_consent") {
				t.Fatalf("newsletter before consent: exit %d\n%s", code, out)
			}
			if r := cli("consent", "grant", "jan@example.com", "newsletter", "--source", "form"); r.code != 0 {
				t.Fatalf("grant: %s%s", r.stdout, r.stderr)
			}
			code, out = swaksSend(t, s.smtpAddr, "jan@example.com", newsletter...)
			if code != 0 || !strings.Contains(out, "relayed 1, blocked 0") {
				t.Fatalf("newsletter after consent: exit %d\n%s", code, out)
			}
			if n := outbox(); n != 1 {
				t.Errorf("outbox holds %d copies, want 1", n)
			}
			if r := cli("consent", "withdraw", "jan@example.com", "newsletter"); r.code != 0 {
				t.Fatalf("withdraw: %s%s", r.stdout, r.stderr)
			}
			code, out = swaksSend(t, s.smtpAddr, "jan@example.com", newsletter...)
			if code == 0 || !strings.Contains(out, "withdrawn") {
				t.Fatalf("newsletter after withdrawal: exit %d\n%s", code, out)
			}
			code, out = swaksSend(t, s.smtpAddr, "jan@example.com", "--header", "X-Optin-Purpose: transactional", "--body", "Uw bestelling")
			if code != 0 {
				t.Fatalf("transactional after withdrawal: exit %d\n%s", code, out)
			}
			if n := outbox(); n != 2 {
				t.Errorf("outbox holds %d copies, want 2", n)
			}
			show := cli("consent", "show", "jan@example.com")
			for _, want := range []string{"message.blocked", "message.relayed", "consent.granted", "consent.withdrawn"} {
				if !strings.Contains(show.stdout, want) {
					t.Errorf("history lacks %s:\n%s", want, show.stdout)
				}
			}
			if r := cli("verify"); r.code != 0 {
				t.Errorf("verify: %d %s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestRedisDownRefusesMail: with Redis gone, mail gets 451 4.3.0 and
// nothing is relayed (fail closed).
func TestRedisDownRefusesMail(t *testing.T) {
	rs := redistest.Start(t)
	dir := t.TempDir()
	s := startServe(t, dir, "OPTINPROXY_STORE_REDIS_URL="+rs.URL())
	rs.Stop()
	code, out := swaksSend(t, s.smtpAddr, "info@bakkerij.example", "--header", "X-Optin-Purpose: transactional")
	if code == 0 || !strings.Contains(out, "451 4.3.0") {
		t.Errorf("send with Redis down: exit %d\n%s", code, out)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "data/outbox/*.eml")); len(files) != 0 {
		t.Errorf("%d copies relayed with Redis down", len(files))
	}
}
