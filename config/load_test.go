package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestFileOverlaysDefaults: keys the file sets change; the rest keep
// their defaults, in the same section and elsewhere.
func TestFileOverlaysDefaults(t *testing.T) {
	cfg := mustLoad(t, lines(
		"smtp:",
		"  listen: 0.0.0.0:25",
		"  max_recipients: 50",
		"upstream:",
		"  dedup_window: 2d",
	))
	want := Default()
	want.SMTP.Listen = "0.0.0.0:25"
	want.SMTP.MaxRecipients = 50
	want.Upstream.DedupWindow = Duration(48 * time.Hour)
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}
}

// TestLists: a list in the file replaces the default; [] stays empty
// (trusts nothing); an absent or null key keeps the default.
func TestLists(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"replaced", "smtp: {trusted_networks: [10.0.0.0/8]}\n", []string{"10.0.0.0/8"}},
		{"explicit empty", "smtp:\n  trusted_networks: []\n", []string{}},
		{"null keeps default", "smtp:\n  trusted_networks:\n", []string{"127.0.0.0/8", "::1/128"}},
		{"absent keeps default", "smtp: {listen: \"127.0.0.1:25\"}\n", []string{"127.0.0.0/8", "::1/128"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustLoad(t, tt.text)
			if got := cfg.SMTP.TrustedNetworks; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("trusted_networks = %#v, want %#v", got, tt.want)
			}
			if len(tt.want) == 0 && len(cfg.SMTP.TrustedPrefixes()) != 0 {
				t.Fatal("an empty list must trust nothing")
			}
		})
	}
}

func TestUnknownKeyNamesPathAndLine(t *testing.T) {
	_, errs := loadYAML(t, lines(
		"# a comment",
		"smtp:",
		"  listen: 127.0.0.1:2525",
		"",
		"",
		"",
		"  lisen: 127.0.0.1:25",
		"purposes:",
		"  news: {basis: consent, category: marketing, colour: red}",
		"admin:",
		"  tokens:",
		"    - {name: a, token_sha256: "+strings.Repeat("ab", 32)+", scopes: [read], token: x}",
		"bogus: 1",
		"policy: {default_purpose: news}",
	))
	findProblem(t, errs, "smtp.lisen", 7)
	findProblem(t, errs, "purposes.news.colour", 9)
	p := findProblem(t, errs, "admin.tokens[0].token", 12)
	if !strings.Contains(p.Msg, "token_file") {
		t.Errorf("a secret key without _file should point at token_file: %q", p.Msg)
	}
	findProblem(t, errs, "bogus", 13)
	if !strings.Contains(errs.Error(), "config.yaml:7: smtp.lisen: unknown key") {
		t.Fatalf("Error() lacks the file:line: key: form:\n%v", errs)
	}
	if len(errs.Problems) != 4 {
		t.Fatalf("want 4 problems, got:\n%v", errs)
	}
}

// TestWrongTypes: each wrong type is reported with key and line, and the
// decode goes on to find the problems after it.
func TestWrongTypes(t *testing.T) {
	_, errs := loadYAML(t, lines(
		"smtp:",
		"  max_recipients: many",          // 2
		"  max_message_bytes: [1]",        // 3
		"  blocked_dsn: perhaps",          // 4
		"  trusted_networks: 10.0.0.0/8",  // 5: a string, not a list
		"  users: {username: crm}",        // 6: a mapping, not a list
		"  read_timeout: 5",               // 7: no unit
		"upstream: file://./out",          // 8: a string, not a mapping
		"purposes:",                       // 9
		"  news: [consent]",               // 10
		"  other:",                        // 11
		"    unsubscribe: sometimes",      // 12
		"    basis: {a: b}",               // 13
		"max_recipients: 5",               // 14: at the wrong level
		"smtp_listen: x",                  // 15
		"http: {listen: \"1000\"}",        // 16: not a type problem, but a bad address
		"store: {redis: {key_prefix: 7}}", // 17: fine: any scalar is a string
	))
	for key, line := range map[string]int{
		"smtp.max_recipients":        2,
		"smtp.max_message_bytes":     3,
		"smtp.blocked_dsn":           4,
		"smtp.trusted_networks":      5,
		"smtp.users":                 6,
		"smtp.read_timeout":          7,
		"upstream":                   8,
		"purposes.news":              10,
		"purposes.other.unsubscribe": 12,
		"purposes.other.basis":       13,
		"max_recipients":             14,
		"smtp_listen":                15,
	} {
		findProblem(t, errs, key, line)
	}
	findProblem(t, errs, "http.listen", 16)
	// The rest: purposes.other.category, which is missing, not
	// mistyped. A key that failed to decode is not reported again by
	// validation (no "purposes.news.basis: must be set").
	findProblem(t, errs, "purposes.other.category", 11)
	if len(errs.Problems) != 14 {
		t.Fatalf("want 14 problems, got:\n%v", errs)
	}
	_, errs = loadYAML(t, "smtp: {max_recipients: \"10\"}\n")
	if p := findProblem(t, errs, "smtp.max_recipients", 1); !strings.Contains(p.Msg, "without quotes") {
		t.Fatalf("quoted number: %q", p.Msg)
	}
}

// TestAllProblemsReported: one file with many mistakes of several kinds
// yields a problem for each, in line order.
func TestAllProblemsReported(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "config.yaml", lines(
		"smtp:",
		"  listen: nowhere",          // 2
		"  max_recipients: 0",        // 3
		"  users:",                   // 4
		"    - username: crm",        // 5
		"      password_hash: plain", // 6
		"upstream:",                  // 7
		"  url: ftp://mail",          // 8
		"  startls: required",        // 9 (typo)
		"http:",                      // 10
		"  public_url: /relative",    // 11
		"policy:",                    // 12
		"  mode: strict",             // 13
		"unsubscribe:",               // 14
		"  language: de",             // 15
	))
	_, errs := loadPath(t, path)
	want := []struct {
		key  string
		line int
	}{
		{"smtp.listen", 2},
		{"smtp.max_recipients", 3},
		{"smtp.users[0].password_hash", 6},
		{"upstream.url", 8},
		{"upstream.startls", 9},
		{"http.public_url", 11},
		{"policy.mode", 13},
		{"unsubscribe.language", 15},
	}
	if errs == nil || len(errs.Problems) != len(want) {
		t.Fatalf("want %d problems, got:\n%v", len(want), errs)
	}
	for i, w := range want {
		if p := errs.Problems[i]; p.Key != w.key || p.Line != w.line {
			t.Errorf("problem %d = %s line %d, want %s line %d", i, p.Key, p.Line, w.key, w.line)
		}
	}
	out := strings.Split(errs.Error(), "\n")
	if len(out) != len(want) || out[1] != path+":3: smtp.max_recipients: must be > 0" {
		t.Fatalf("Error() =\n%s", errs.Error())
	}
}

// TestNotYAML: text that is not a YAML mapping gives one problem with
// its line.
func TestNotYAML(t *testing.T) {
	tests := []struct {
		name, text string
		line       int
	}{
		{"unclosed flow", "smtp:\n  listen: [a\n", 2},
		{"mapping in scalar", "smtp:\n  listen: a: b\n", 2},
		{"bad indentation", "smtp:\n  listen: a\n tls_listen: b\n", 3},
		{"tab indentation", "smtp:\n\tlisten: a\n", 2},
		{"unknown escape", "smtp:\n  hostname: \"a\\qb\"\n", 2},
		{"plain text", "just some words\n", 1},
		{"a list", "- a\n- b\n", 1},
		{"two documents", "smtp: {}\n---\nhttp: {}\n", 3},
		{"unclosed quote", "smtp:\n  listen: \"abc\n  x: y\n", 2},
		{"control characters", "smtp:\n  listen: \x01\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := loadYAML(t, tt.text)
			if errs == nil || len(errs.Problems) != 1 {
				t.Fatalf("want one problem, got %v", errs)
			}
			if p := errs.Problems[0]; p.Line != tt.line {
				t.Fatalf("problem at line %d, want %d: %v", p.Line, tt.line, errs)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, errs := loadPath(t, path)
	if errs == nil || len(errs.Problems) != 1 || !strings.Contains(errs.Error(), "no such file") {
		t.Fatalf("got %v", errs)
	}
}

// TestAnchors: aliases and merge keys work, explicit keys beat merged ones.
func TestAnchors(t *testing.T) {
	cfg := mustLoad(t, lines(
		"x-base: &base {basis: consent, category: marketing, retention: 30d}",
		"purposes:",
		"  a: {<<: *base, retention: 60d}",
		"  b: *base",
	), "OPTINPROXY_POLICY_DEFAULT_PURPOSE=a")
	month := Duration(30 * day)
	want := Default().Purposes
	want["a"] = Purpose{Basis: "consent", Category: "marketing", Retention: 2 * month}
	want["b"] = Purpose{Basis: "consent", Category: "marketing", Retention: month}
	if !reflect.DeepEqual(cfg.Purposes, want) {
		t.Fatalf("purposes = %+v, want %+v", cfg.Purposes, want)
	}
	// x- keys are for anchors at the top only.
	_, errs := loadYAML(t, "smtp: {x-a: 1}\n")
	findProblem(t, errs, "smtp.x-a", 1)
}

// TestRepeatedKey: YAML forbids a key twice in one mapping.
func TestRepeatedKey(t *testing.T) {
	_, errs := loadYAML(t, lines(
		"smtp:",
		"  listen: 127.0.0.1:25",
		"  listen: 127.0.0.1:26",
	))
	p := findProblem(t, errs, "smtp.listen", 3)
	if !strings.Contains(p.Msg, "line 2") {
		t.Fatalf("message should point at the first: %q", p.Msg)
	}
}

// TestFullExample loads a file that sets the documented keys, with real files for its
// secrets, and checks that every key arrived.
func TestFullExample(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "crm.token", "  tok-123\n")
	apiKey := writeFile(t, dir, "mc.key", "key-us1\n")
	pw := writeFile(t, dir, "pw", "hunter2\n")
	text := lines(
		"smtp:",
		"  listen: 127.0.0.1:2525",
		"  tls_listen: \"\"",
		"  hostname: relay.example.com",
		"  tls: {cert_file: \"\", key_file: \"\"}",
		"  trusted_networks: [127.0.0.0/8, \"::1/128\", 192.0.2.7]",
		"  max_message_bytes: 26214400",
		"  max_recipients: 1000",
		"  max_connections: 500",
		"  max_connections_per_ip: 20",
		"  max_inflight_bytes: 536870912",
		"  blocked_dsn: true",
		"  users:",
		"    - username: crm",
		"      password_hash: \""+testHash(t)+"\"",
		"      default_purpose: newsletter",
		"      purposes: []",
		"      from_domains: [example.com]",
		"upstream:",
		"  url: smtp://mail.example.net:587",
		"  username: relay",
		"  password_file: "+pw,
		"  starttls: required",
		"  dedup_window: 24h",
		"http:",
		"  listen: 127.0.0.1:8080",
		"  public_url: https://optin.example.com",
		"store:",
		"  path: ./data",
		"  redis:",
		"    url: redis://localhost:6379/0",
		"    sentinel: {master: \"\", addrs: []}",
		"    cluster_addrs: []",
		"    key_prefix: \"optin:\"",
		"policy:",
		"  mode: monitor",
		"  default_purpose: newsletter",
		"  current_version: \"2026-01\"",
		"  role_addresses: {add: [kantoor], remove: [info]}",
		"purposes:",
		"  newsletter:   {basis: consent, category: marketing, retention: 730d, double_opt_in: true,",
		"                 description: \"Our monthly newsletter\", unsubscribe: true, role_addresses: require_consent}",
		"  transactional: {basis: contract, category: transactional}",
		"  breach-notice: {basis: legal_obligation, category: legal}",
		"unsubscribe:",
		"  secret_file: ./data/unsubscribe.key",
		"  previous_secrets: []",
		"  mailto_domain: unsub.example.com",
		"  language: en",
		"  footer: false",
		"  templates:",
		"    nl: {text: \"Afmelden: {{unsubscribe_url}}\", html: \"<a href=\\\"{{unsubscribe_url}}\\\">Afmelden</a>\"}",
		"admin:",
		"  tokens:",
		"    - {name: crm, token_file: "+tokenFile+", scopes: [read, write]}",
		"    - {name: ops, token_sha256: "+strings.Repeat("0f", 32)+", scopes: [erase]}",
		"webhooks:",
		"  mailchimp: {secret: 3f1c0a9e7b2d4c6e8f0a1b2c3d4e5f60, lists: {abc123: newsletter}}",
		"  mandrill: {key: k, url: \"https://optin.example.com/webhooks/mandrill\"}",
		"  crm: {secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}",
		"  outbound:",
		"    - {url: \"https://crm.example.com/hook\", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, events: [consent.withdrawn, subject.erased]}",
		"  mailchimp_api: {api_key_file: "+apiKey+", list_id: abc123, purpose: newsletter}",
		"dkim:",
		"  - {domain: example.com, selector: s1, key_file: ./secrets/dkim.pem}",
	)
	cfg := mustLoad(t, text)
	checks := []struct {
		key       string
		got, want any
	}{
		{"hostname", cfg.SMTP.Hostname, "relay.example.com"},
		{"trusted", cfg.SMTP.TrustedNetworks, []string{"127.0.0.0/8", "::1/128", "192.0.2.7"}},
		{"blocked_dsn", cfg.SMTP.BlockedDSN, true},
		{"max_connections", cfg.SMTP.MaxConnections, 500},
		{"max_connections_per_ip", cfg.SMTP.MaxConnectionsPerIP, 20},
		{"max_inflight_bytes", cfg.SMTP.MaxInflightBytes, int64(512 << 20)},
		{"user", cfg.SMTP.Users[0].FromDomains, []string{"example.com"}},
		{"user purposes", cfg.SMTP.Users[0].Purposes, []string{}},
		{"password", cfg.Upstream.Password, "hunter2"},
		{"starttls", cfg.Upstream.StartTLS, "required"},
		{"redis", cfg.Store.Redis.URL, "redis://localhost:6379/0"},
		{"mode", cfg.Policy.Mode, "monitor"},
		{"role add", cfg.Policy.RoleAddresses.Add, []string{"kantoor"}},
		{"purposes", len(cfg.Purposes), 3},
		{"double opt-in", cfg.Purposes["newsletter"].DoubleOptIn, true},
		{"role_addresses", cfg.Purposes["newsletter"].RoleAddresses, "require_consent"},
		{"language", cfg.Unsubscribe.Language, "en"},
		{"footer", cfg.Unsubscribe.Footer, false},
		{"templates", cfg.Unsubscribe.Templates, map[string]FooterTemplate{"nl": {Text: "Afmelden: {{unsubscribe_url}}", HTML: `<a href="{{unsubscribe_url}}">Afmelden</a>`}}},
		{"token", cfg.Admin.Tokens[0].Token, "tok-123"},
		{"api key", cfg.Webhooks.MailchimpAPI.APIKey, "key-us1"},
		{"lists", cfg.Webhooks.Mailchimp.Lists, map[string]string{"abc123": "newsletter"}},
		{"outbound", cfg.Webhooks.Outbound[0].Events, []string{"consent.withdrawn", "subject.erased"}},
		{"dkim", cfg.DKIM[0], DKIM{Domain: "example.com", Selector: "s1", KeyFile: "./secrets/dkim.pem"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
}

// TestLoadDoesNotWrite: Load has no side effects; the unsubscribe secret
// is the server's to create.
func TestLoadDoesNotWrite(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "unsubscribe.key")
	mustLoad(t, "unsubscribe: {secret_file: "+secret+"}\n")
	if _, err := os.Stat(secret); !os.IsNotExist(err) {
		t.Fatalf("Load touched the unsubscribe secret: %v", err)
	}
}
