package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"optinproxy/config"
)

// TestCheckMatchesTheRelay: on each store, the list check answers for
// every address what the relay then decides for a newsletter to it
// (consented, withdrawn, expired, pending, role address, suppressed,
// none), as its receipts record; an address that does not parse is
// invalid_address. The reports then read the same ledger.
func TestCheckMatchesTheRelay(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			dir := t.TempDir()
			cfgFile := filepath.Join(dir, "optinproxy.yaml")
			cfg := "controller:\n  name: Bakkerij Jansen B.V.\n  contact: privacy@bakkerij.example\n" +
				"purposes:\n  newsletter: {basis: consent, category: marketing, retention: 730d}\n" +
				"  transactional: {basis: contract, category: transactional}\n" +
				"  events: {basis: consent, category: marketing, double_opt_in: true}\n"
			if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			s := serveOn(t, store, dir, "OPTINPROXY_CONFIG="+cfgFile)
			cli := cliOf(t, dir, s)
			must := func(args ...string) string {
				t.Helper()
				r := cli(args...)
				if r.code != 0 {
					t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
				}
				return r.stdout
			}
			must("consent", "grant", "jan@example.com", "newsletter", "--source", "form")
			must("consent", "grant", "piet@example.com", "newsletter")
			must("consent", "withdraw", "piet@example.com", "newsletter")
			must("consent", "grant", "bounce@example.com", "newsletter")
			must("suppress", "add", "bounce@example.com", "--reason", "hard_bounce")
			imports := "email,purpose,status,basis,source,granted_at,policy_version\n" +
				"old@example.com,newsletter,granted,consent,import,2020-01-01,2019-01\n" +
				"pending@example.com,newsletter,pending,consent,import,,\n"
			os.WriteFile(filepath.Join(dir, "import.csv"), []byte(imports), 0o600)
			must("import", "import.csv")

			valid := []string{"jan@example.com", "piet@example.com", "old@example.com", "pending@example.com",
				"info@bakkerij.example", "bounce@example.com", "nobody@example.com"}
			list := "naam,Email\nJan,jan@example.com\n"
			for _, a := range valid[1:] {
				list += "x," + a + "\n"
			}
			list += "y,not an address\n"
			os.WriteFile(filepath.Join(dir, "list.csv"), []byte(list), 0o600)
			r := cli("check", "list.csv", "--purpose", "newsletter")
			if r.code != 0 || !strings.Contains(r.stderr, "8 addresses: 2 allowed, 6 blocked for newsletter") {
				t.Fatalf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
			if err != nil || len(rows) != 9 || strings.Join(rows[0], ",") != "email,decision,reason" {
				t.Fatalf("check's CSV: %v\n%s", err, r.stdout)
			}
			checked := map[string]string{}
			for i, row := range rows[1:] {
				if i < len(valid) && row[0] != valid[i] {
					t.Errorf("row %d is %s, want %s: not in the file's order", i+1, row[0], valid[i])
				}
				checked[row[0]] = row[1] + " " + row[2]
			}
			if checked["not an address"] != "block invalid_address" {
				t.Errorf("an unparseable address: %q", checked["not an address"])
			}

			// The relay decides the same newsletter for the same list.
			code, out := swaksSend(t, s.smtpAddr, strings.Join(valid, ","), "--header", "X-Optin-Purpose: newsletter", "--body", "Lente")
			if code != 0 || !strings.Contains(out, "relayed 2, blocked 5") {
				t.Fatalf("newsletter to the list: exit %d\n%s", code, out)
			}
			// The reply names each blocked recipient with its reason.
			for _, a := range valid {
				if reason, blocked := strings.CutPrefix(checked[a], "block "); blocked && !strings.Contains(out, "<"+a+">: "+reason) {
					t.Errorf("the reply does not name <%s>: %s:\n%s", a, reason, out)
				}
			}
			for _, a := range valid {
				var v struct {
					Events []struct {
						Type    string
						Details struct{ Decision, Reason string }
					}
				}
				if err := json.Unmarshal([]byte(must("consent", "show", "--json", a)), &v); err != nil {
					t.Fatal(err)
				}
				relay := ""
				for _, e := range v.Events {
					if e.Type == "message.relayed" || e.Type == "message.blocked" {
						relay = e.Details.Decision + " " + e.Details.Reason
					}
				}
				if relay == "" || relay != checked[a] {
					t.Errorf("%s: the check said %q, the relay decided %q", a, checked[a], relay)
				}
			}
			want := map[string]string{"jan@example.com": "allow consent", "piet@example.com": "block withdrawn",
				"old@example.com": "block expired", "pending@example.com": "block pending_confirmation",
				"info@bakkerij.example": "allow role_address", "bounce@example.com": "block suppressed:hard_bounce",
				"nobody@example.com": "block no_consent"}
			for a, w := range want {
				if checked[a] != w {
					t.Errorf("%s: checked %q, want %q", a, checked[a], w)
				}
			}

			// The reports on the same ledger.
			out = must("report", "no-basis", "--format", "csv")
			var blocked []string
			recs, _ := csv.NewReader(strings.NewReader(out)).ReadAll()
			for _, rec := range recs[1:] {
				blocked = append(blocked, rec[0]+" "+rec[2]+" "+rec[5])
			}
			if w := []string{"bounce@example.com 1 suppressed:hard_bounce", "nobody@example.com 1 no_consent", "old@example.com 1 expired",
				"pending@example.com 1 pending_confirmation", "piet@example.com 1 withdrawn"}; !slices.Equal(blocked, w) {
				t.Errorf("report no-basis: %v, want %v\n%s", blocked, w, out)
			}
			since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
			until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
			out = must("report", "affected", "--since", since, "--until", until)
			for _, w := range []string{"jan@example.com ", "consent.granted 1, message.relayed 1", "info@bakkerij.example", "message.relayed 1",
				"bounce@example.com", "suppression.added 1", "6 subjects mailed or changed"} {
				if !strings.Contains(out, w) {
					t.Errorf("report affected lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "nobody@example.com") {
				t.Errorf("report affected names a subject that was only blocked:\n%s", out)
			}
			out = must("report", "expiring", "--days", "800")
			if !strings.Contains(out, "jan@example.com") || strings.Contains(out, "old@example.com") {
				t.Errorf("report expiring --days 800:\n%s", out)
			}
			out = must("report", "outdated-policy")
			for _, w := range []string{"old@example.com", "2019-01", "pending@example.com", "unknown", "other than 2026-01"} {
				if !strings.Contains(out, w) {
					t.Errorf("report outdated-policy lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "jan@example.com") {
				t.Errorf("report outdated-policy names a consent under the current version:\n%s", out)
			}
			out = must("report", "processing")
			for _, w := range []string{"# Record of processing activities", "- Name: Bakkerij Jansen B.V.", "| events |", "| message receipts | 400d |"} {
				if !strings.Contains(out, w) {
					t.Errorf("report processing lacks %q:\n%s", w, out)
				}
			}
			var rec struct{ Controller struct{ Contact string } }
			if err := json.Unmarshal([]byte(must("report", "processing", "--format", "json")), &rec); err != nil || rec.Controller.Contact != "privacy@bakkerij.example" {
				t.Errorf("report processing --format json: %v %+v", err, rec)
			}
			must("report", "no-proof")

			// Bad files and bad arguments get one clear line.
			os.WriteFile(filepath.Join(dir, "nocol.csv"), []byte("name,address\nJan,jan@example.com\n"), 0o600)
			os.WriteFile(filepath.Join(dir, "ragged.csv"), []byte("name,email\nJan,jan@example.com\nPiet\n"), 0o600)
			for _, tc := range []struct {
				args []string
				code int
				want string
			}{
				{[]string{"check", "nocol.csv", "--purpose", "newsletter"}, 1, "nocol.csv:1: "},
				{[]string{"check", "ragged.csv", "--purpose", "newsletter"}, 1, "ragged.csv:3: not a list of addresses: the row ends before its email column"},
				{[]string{"check", "list.csv", "--purpose", "nieuwsbrief"}, 1, "events, newsletter, transactional"},
				{[]string{"check", "list.csv"}, 2, "--purpose"},
				{[]string{"check", "missing.csv", "--purpose", "newsletter"}, 1, "missing.csv"},
				{[]string{"report", "affected", "--since", since}, 2, "--until"},
				{[]string{"report", "no-basis", "--since", "yesterday"}, 2, "RFC 3339"},
				{[]string{"report", "processing", "--format", "csv"}, 2, "markdown or json"},
				{[]string{"report", "sales"}, 2, "no-basis"},
				{[]string{"report", "no-basis", "--days", "5"}, 2, "--days is for expiring"},
			} {
				r := cli(tc.args...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
					t.Errorf("%v: exit %d %q; want %d and one line naming %q", tc.args, r.code, r.stderr, tc.code, tc.want)
				}
			}
			// A list without addresses is an empty answer, its purpose checked.
			os.WriteFile(filepath.Join(dir, "empty.csv"), nil, 0o600)
			os.WriteFile(filepath.Join(dir, "header.csv"), []byte("email,name\n"), 0o600)
			for _, f := range []string{"empty.csv", "header.csv"} {
				if r := cli("check", f, "--purpose", "newsletter"); r.code != 0 || r.stdout != "email,decision,reason\n" ||
					r.stderr != "0 addresses: 0 allowed, 0 blocked for newsletter\n" {
					t.Errorf("check %s: exit %d %q %q", f, r.code, r.stdout, r.stderr)
				}
				if r := cli("check", f, "--purpose", "nieuwsbrief"); r.code != 1 || !strings.Contains(r.stderr, "unknown purpose") {
					t.Errorf("check %s of an unknown purpose: exit %d %q", f, r.code, r.stderr)
				}
			}
		})
	}
}

// TestProcessingRecordHosts: the record of processing names each
// processor by its host and never carries a credential of the
// configuration.
func TestProcessingRecordHosts(t *testing.T) {
	cfg := config.Default()
	cfg.Upstream.URL = "smtps://relay-user:hunter2@smtp.mailer.example:465"
	cfg.Webhooks.Outbound = []config.Outbound{{URL: "https://hooks:s3cret@crm.example/optin?key=abc123", Events: []string{"consent.withdrawn"}}}
	cfg.Webhooks.MailchimpAPI.APIKey = "0123456789abcdef-us6"
	cfg.Webhooks.MandrillAPI.APIKey = "md-key-xyz"
	rec := processingRecord(cfg)
	got, _ := json.Marshal(rec)
	for _, w := range []string{`"host":"smtp.mailer.example:465"`, `"host":"crm.example"`, `"host":"us6.api.mailchimp.com"`, `"host":"mandrillapp.com"`} {
		if !strings.Contains(string(got), w) {
			t.Errorf("record lacks %s: %s", w, got)
		}
	}
	for _, secret := range []string{"hunter2", "relay-user", "s3cret", "abc123", "0123456789abcdef", "md-key"} {
		if strings.Contains(string(got), secret) {
			t.Errorf("the record carries %q: %s", secret, got)
		}
	}
	cfg = config.Default() // file:// upstream, nothing else: no processor
	if rec := processingRecord(cfg); len(rec.Processors) != 0 || rec.Store != "embedded" {
		t.Errorf("the default configuration's record: %+v", rec)
	}
}
