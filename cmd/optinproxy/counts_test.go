package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The command line counts as people do: one of a thing is "1 subject",
// "1 address", "1 day", never "1 subjects"; zero and many are plural.
func TestCLICountsOfOne(t *testing.T) {
	dir := t.TempDir()
	s := serveOn(t, "embedded", dir)
	cli := cliOf(t, dir, s)
	mustOut(t, cli("consent", "grant", "jan@example.com", "newsletter"), "granted")

	mustOut(t, cli("verify"), "1 subject, 1 event checked (0 of them receipts)\n")
	os.WriteFile(filepath.Join(dir, "one.txt"), []byte("jan@example.com\n"), 0o600)
	if r := cli("check", "one.txt", "--purpose", "newsletter"); r.code != 0 || r.stderr != "1 address: 1 allowed, 0 blocked for newsletter\n" {
		t.Errorf("check of one address: exit %d %q", r.code, r.stderr)
	}
	mustOut(t, cli("report", "expiring", "--days", "1"), "0 consents expire within 1 day\n")
	mustOut(t, cli("report", "expiring", "--days", "800"), "1 consent expires within 800 days\n")
	mustOut(t, cli("report", "no-proof"), "1 consent without full proof\n")
	mustOut(t, cli("report", "outdated-policy", "--format", "table"), "0 consents given under a policy version other than")
	mustOut(t, cli("report", "affected", "--since", "2020-01-01T00:00:00Z", "--until", "2099-01-01T00:00:00Z"),
		"1 subject mailed or changed from 2020-01-01T00:00:00Z to 2099-01-01T00:00:00Z\n")
	mustOut(t, cli("report", "no-basis"), "0 subjects and purposes, 0 blocked attempts from ")
}

// verify and migrate count receipts among the events alike, one of them
// in the singular.
func TestReceiptsAmong(t *testing.T) {
	for n, want := range map[int]string{0: "0 of them receipts", 1: "1 of them a receipt", 2: "2 of them receipts"} {
		if got := receiptsAmong(n); got != want {
			t.Errorf("receiptsAmong(%d) = %q, want %q", n, got, want)
		}
	}
}
