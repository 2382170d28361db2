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
