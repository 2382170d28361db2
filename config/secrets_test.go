package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "\n  s3cret pass \t\n")
	tok := writeFile(t, dir, "tok", "tok-abc\r\n")
	key := writeFile(t, dir, "key", "key-us1")
	cfg := mustLoad(t, lines(
		"upstream: {url: smtp://mail, username: u, password_file: "+pw+"}",
		"admin:",
		"  tokens:",
		"    - {name: crm, token_file: "+tok+", scopes: [read]}",
		"webhooks:",
		"  mailchimp_api: {api_key_file: "+key+", list_id: l}",
		"unsubscribe: {secret_file: "+filepath.Join(dir, "not-yet")+"}",
	))
	eq(t, cfg.Upstream.Password, "s3cret pass")
	eq(t, cfg.Admin.Tokens[0].Token, "tok-abc")
	eq(t, cfg.Webhooks.MailchimpAPI.APIKey, "key-us1")
}

// TestWebhookSecretFiles: every webhook secret can come from a file, and
// a secret given inline and as a file is a problem on its key.
func TestWebhookSecretFiles(t *testing.T) {
	dir := t.TempDir()
	whsec := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	crm := writeFile(t, dir, "crm", whsec+"\n")
	mc := writeFile(t, dir, "mc", "3f1c0a9e7b2d4c6e8f0a1b2c3d4e5f60\n")
	md := writeFile(t, dir, "md", "mandrill-key\n")
	cfg := mustLoad(t, lines(
		"webhooks:",
		"  mailchimp: {secret_file: "+mc+", lists: {abc: newsletter}}",
		"  mandrill: {key_file: "+md+", url: \"https://x.example/webhooks/mandrill\"}",
		"  crm: {secret_file: "+crm+"}",
		"  outbound: [{url: \"https://crm.example/hook\", secret_file: "+crm+"}]",
	))
	eq(t, cfg.Webhooks.Mailchimp.Secret, "3f1c0a9e7b2d4c6e8f0a1b2c3d4e5f60")
	eq(t, cfg.Webhooks.Mandrill.Key, "mandrill-key")
	eq(t, cfg.Webhooks.CRM.Secret, whsec)
	eq(t, cfg.Webhooks.Outbound[0].Secret, whsec)

	_, errs := loadYAML(t, lines(
		"webhooks:",
		"  crm:",
		"    secret: "+whsec,
		"    secret_file: "+crm,
	))
	if p := findProblem(t, errs, "webhooks.crm.secret", 3); !strings.Contains(p.Msg, "not both") {
		t.Errorf("message: %q", p.Msg)
	}
}

func TestSecretFileProblems(t *testing.T) {
	dir := t.TempDir()
	big := writeFile(t, dir, "big", strings.Repeat("x", maxSecretBytes+1))
	_, errs := loadYAML(t, lines(
		"upstream:",
		"  url: smtp://mail",
		"  username: u",
		"  password_file: "+filepath.Join(dir, "missing"), // 4
		"admin:",
		"  tokens:",
		"    - {name: a, token_file: "+dir+", scopes: [read]}", // 7: a directory
		"    - {name: b, token_file: "+big+", scopes: [read]}", // 8
	), "OPTINPROXY_WEBHOOKS_MAILCHIMP_API_API_KEY_FILE="+filepath.Join(dir, "gone"), "OPTINPROXY_WEBHOOKS_MAILCHIMP_API_LIST_ID=l")
	p := findProblem(t, errs, "upstream.password_file", 4)
	if !strings.Contains(p.Msg, "no such file") {
		t.Errorf("message: %q", p.Msg)
	}
	findProblem(t, errs, "admin.tokens[0].token_file", 7)
	findProblem(t, errs, "admin.tokens[1].token_file", 8)
	if p := findProblem(t, errs, "webhooks.mailchimp_api.api_key_file", 0); p.Env != "OPTINPROXY_WEBHOOKS_MAILCHIMP_API_API_KEY_FILE" {
		t.Errorf("problem does not name the variable: %+v", p)
	}
}

// TestUnreadableSecretFileOnce: a webhook secret whose file cannot be
// read is one problem, on its *_file key, not also "must be set".
func TestUnreadableSecretFileOnce(t *testing.T) {
	_, errs := loadYAML(t, lines(
		"webhooks:",
		"  mailchimp:",
		"    secret_file: /nonexistent/mailchimp.secret",
		"    lists: {abc123: newsletter}",
		"  outbound:",
		"    - {url: \"https://crm.example/hook\", secret_file: /nonexistent/outbound.secret}",
	))
	findProblem(t, errs, "webhooks.mailchimp.secret_file", 3)
	findProblem(t, errs, "webhooks.outbound[0].secret_file", 6)
	if len(errs.Problems) != 2 {
		t.Fatalf("want 2 problems, got:\n%v", errs)
	}
}
