package config

import (
	"strings"
	"testing"
)

// TestValidationProblems: each class of bad value yields a problem with
// its key and line. Files are written for real; HASH is a bcrypt hash,
// CERT and KEY a certificate and key that load, DIR the file's directory.
func TestValidationProblems(t *testing.T) {
	tests := []struct {
		name, text string
		key        string
		line       int
	}{
		// smtp
		{"listen not host:port", "smtp:\n  listen: localhost\n", "smtp.listen", 2},
		{"listen bad port", "smtp:\n  listen: \"localhost:http\"\n", "smtp.listen", 2},
		{"listen empty", "smtp:\n  listen: \"\"\n", "smtp.listen", 2},
		{"tls_listen bad", "smtp:\n  tls: {cert_file: CERT, key_file: KEY}\n  tls_listen: \"465\"\n", "smtp.tls_listen", 3},
		{"tls_listen without tls", "smtp:\n  tls_listen: \":465\"\n", "smtp.tls_listen", 2},
		{"cert without key", "smtp:\n  tls:\n    cert_file: CERT\n", "smtp.tls.key_file", 2},
		{"key without cert", "smtp:\n  tls:\n    key_file: KEY\n", "smtp.tls.cert_file", 2},
		{"key pair does not load", "smtp:\n  tls:\n    cert_file: KEY\n    key_file: KEY\n", "smtp.tls.cert_file", 3},
		{"key pair missing", "smtp:\n  tls:\n    cert_file: DIR/nope.pem\n    key_file: KEY\n", "smtp.tls.cert_file", 3},
		{"hostname empty", "smtp: {hostname: \"\"}\n", "smtp.hostname", 1},
		{"trusted proxy bad", "http:\n  trusted_proxies: [10.0.0.1, proxy.example]\n", "http.trusted_proxies[1]", 2},
		{"trusted network bad", "smtp:\n  trusted_networks:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n", "smtp.trusted_networks[1]", 4},
		{"max_message_bytes zero", "smtp:\n  max_message_bytes: 0\n", "smtp.max_message_bytes", 2},
		{"max_recipients negative", "smtp:\n  max_recipients: -5\n", "smtp.max_recipients", 2},
		{"max_connections zero", "smtp:\n  max_connections: 0\n", "smtp.max_connections", 2},
		{"max_connections_per_ip negative", "smtp:\n  max_connections_per_ip: -1\n", "smtp.max_connections_per_ip", 2},
		{"max_inflight_bytes zero", "smtp:\n  max_inflight_bytes: 0\n", "smtp.max_inflight_bytes", 2},
		{"max_inflight_bytes below a message", "smtp:\n  max_inflight_bytes: 200000\n", "smtp.max_inflight_bytes", 2},
		{"read_timeout zero", "smtp:\n  read_timeout: 0s\n", "smtp.read_timeout", 2},
		{"username empty", "smtp:\n  users:\n    - password_hash: HASH\n", "smtp.users[0].username", 3},
		{"username repeated", "smtp:\n  users:\n    - {username: a, password_hash: HASH}\n    - {username: a, password_hash: HASH}\n", "smtp.users[1].username", 4},
		{"password_hash not bcrypt", "smtp:\n  users:\n    - username: a\n      password_hash: secret\n", "smtp.users[0].password_hash", 4},
		{"password_hash missing", "smtp:\n  users:\n    - username: a\n", "smtp.users[0].password_hash", 3},
		{"user default_purpose unknown", "smtp:\n  users:\n    - username: a\n      password_hash: HASH\n      default_purpose: nope\n", "smtp.users[0].default_purpose", 5},
		{"user default_purpose not allowed", "smtp:\n  users:\n    - username: a\n      password_hash: HASH\n      purposes: [transactional]\n      default_purpose: newsletter\n", "smtp.users[0].default_purpose", 6},
		{"user purposes unknown", "smtp:\n  users:\n    - username: a\n      password_hash: HASH\n      purposes:\n        - newsletter\n        - nope\n", "smtp.users[0].purposes[1]", 7},
		{"from_domains bad", "smtp:\n  users:\n    - username: a\n      password_hash: HASH\n      from_domains: [\"exa mple.com\"]\n", "smtp.users[0].from_domains[0]", 5},
		// upstream
		{"upstream scheme", "upstream:\n  url: http://mail\n", "upstream.url", 2},
		{"upstream no host", "upstream:\n  url: \"smtp://:25\"\n", "upstream.url", 2},
		{"upstream bad port", "upstream:\n  url: smtp://mail:99999\n", "upstream.url", 2},
		{"upstream credentials in URL", "upstream:\n  url: smtp://u:p@mail:25\n", "upstream.url", 2},
		{"upstream file without dir", "upstream:\n  url: \"file://\"\n", "upstream.url", 2},
		{"starttls", "upstream:\n  starttls: always\n", "upstream.starttls", 2},
		{"username without password_file", "upstream:\n  url: smtp://mail\n  username: u\n", "upstream.password_file", 1},
		{"password_file without username", "upstream:\n  password_file: KEY\n", "upstream.username", 1},
		{"dedup_window negative", "upstream:\n  dedup_window: -1h\n", "upstream.dedup_window", 2},
		{"pool_size negative", "upstream:\n  pool_size: -1\n", "upstream.pool_size", 2},
		{"dedup_window zero, which the relay would read as 24h", "upstream:\n  dedup_window: 0s\n", "upstream.dedup_window", 2},
		{"pool_size zero, which the relay would read as 20", "upstream:\n  pool_size: 0\n", "upstream.pool_size", 2},
		// http
		{"http.listen", "http:\n  listen: \"8080\"\n", "http.listen", 2},
		{"public_url relative", "http:\n  public_url: /optin\n", "http.public_url", 2},
		{"public_url scheme", "http:\n  public_url: ftp://x\n", "http.public_url", 2},
		// store
		{"redis url scheme", "store:\n  redis:\n    url: http://localhost\n", "store.redis.url", 3},
		{"redis url unparsable", "store:\n  redis:\n    url: redis://localhost:6379/notadb\n", "store.redis.url", 3},
		{"redis sentinel and cluster", "store:\n  redis:\n    sentinel: {master: m, addrs: [\"a:1\"]}\n    cluster_addrs: [\"b:1\"]\n", "store.redis", 2},
		{"sentinel without addrs", "store:\n  redis:\n    sentinel:\n      master: m\n", "store.redis.sentinel.addrs", 3},
		{"sentinel without master", "store:\n  redis:\n    sentinel:\n      addrs: [\"a:1\"]\n", "store.redis.sentinel.master", 3},
		{"cluster with a database", "store:\n  redis:\n    url: redis://:pw@redis/3\n    cluster_addrs: [\"b:1\"]\n", "store.redis.url", 3},
		{"cluster addr bad", "store:\n  redis:\n    cluster_addrs:\n      - nohost\n", "store.redis.cluster_addrs[0]", 4},
		{"store path empty", "store:\n  path: \"\"\n", "store.path", 2},
		// policy
		{"policy.mode", "policy:\n  mode: strict\n", "policy.mode", 2},
		{"policy.default_purpose", "policy:\n  default_purpose: nope\n", "policy.default_purpose", 2},
		{"default purpose disabled", "purposes:\n  newsletter: {enabled: false}\n", "policy.default_purpose", 0},
		{"role address bad", "policy:\n  role_addresses:\n    add: [\"info@example.com\"]\n", "policy.role_addresses.add[0]", 3},
		// purposes
		{"purpose name", "purposes:\n  newsletter: {basis: consent, category: marketing}\n  News_Letter: {basis: consent, category: marketing}\n", "purposes.News_Letter", 3},
		{"basis missing", "purposes:\n  news: {category: marketing}\n", "purposes.news.basis", 2},
		{"basis bad", "purposes:\n  newsletter:\n    basis: whim\n    category: marketing\n", "purposes.newsletter.basis", 3},
		{"category missing", "purposes:\n  news: {basis: consent}\n", "purposes.news.category", 2},
		{"category bad", "purposes:\n  newsletter:\n    basis: consent\n    category: spam\n", "purposes.newsletter.category", 4},
		{"retention negative", "purposes:\n  newsletter:\n    basis: consent\n    category: marketing\n    retention: -1d\n", "purposes.newsletter.retention", 5},
		{"role_addresses bad", "purposes:\n  newsletter:\n    basis: consent\n    category: marketing\n    role_addresses: never\n", "purposes.newsletter.role_addresses", 5},
		{"every purpose disabled", "purposes:\n  newsletter: {enabled: false}\n  transactional: {enabled: false}\npolicy: {default_purpose: \"\"}\n", "purposes", 1},
		// unsubscribe
		{"language", "unsubscribe:\n  language: de\n", "unsubscribe.language", 2},
		{"mailto_domain", "unsubscribe:\n  mailto_domain: localhost\n", "unsubscribe.mailto_domain", 2},
		{"secret_file empty", "unsubscribe:\n  secret_file: \"\"\n", "unsubscribe.secret_file", 2},
		{"template language", "unsubscribe:\n  templates:\n    de: {text: \"{{unsubscribe_url}}\"}\n", "unsubscribe.templates.de", 3},
		{"template text without link", "unsubscribe:\n  templates:\n    nl:\n      text: \"Afmelden\"\n", "unsubscribe.templates.nl.text", 4},
		{"template html without link", "unsubscribe:\n  templates:\n    en:\n      html: \"<a href=x>Unsubscribe</a>\"\n", "unsubscribe.templates.en.html", 4},
		{"template line too long", "unsubscribe:\n  templates:\n    en:\n      text: \"{{unsubscribe_url}} " + strings.Repeat("x", 800) + "\"\n", "unsubscribe.templates.en.text", 4},
		// admin
		{"token name empty", "admin:\n  tokens:\n    - {token_sha256: SHA, scopes: [read]}\n", "admin.tokens[0].name", 3},
		{"token name repeated", "admin:\n  tokens:\n    - {name: a, token_sha256: SHA, scopes: [read]}\n    - {name: a, token_sha256: SHA, scopes: [read]}\n", "admin.tokens[1].name", 4},
		{"token without secret", "admin:\n  tokens:\n    - {name: a, scopes: [read]}\n", "admin.tokens[0]", 3},
		{"token with both", "admin:\n  tokens:\n    - name: a\n      token_file: KEY\n      token_sha256: SHA\n      scopes: [read]\n", "admin.tokens[0].token_sha256", 5},
		{"token sha256 short", "admin:\n  tokens:\n    - name: a\n      token_sha256: abcd\n      scopes: [read]\n", "admin.tokens[0].token_sha256", 4},
		{"token sha256 not hex", "admin:\n  tokens:\n    - name: a\n      token_sha256: " + strings.Repeat("zz", 32) + "\n      scopes: [read]\n", "admin.tokens[0].token_sha256", 4},
		{"scopes empty", "admin:\n  tokens:\n    - name: a\n      token_sha256: SHA\n      scopes: []\n", "admin.tokens[0].scopes", 5},
		{"scope unknown", "admin:\n  tokens:\n    - name: a\n      token_sha256: SHA\n      scopes:\n        - read\n        - admin\n", "admin.tokens[0].scopes[1]", 7},
		// webhooks
		{"list purpose unknown", "webhooks:\n  mailchimp:\n    secret: abcdefghijklmnopqrstuvwxyz\n    lists:\n      abc: nope\n", "webhooks.mailchimp.lists.abc", 5},
		{"outbound url", "webhooks:\n  outbound:\n    - url: crm.example.com/hook\n", "webhooks.outbound[0].url", 3},
		{"outbound without url", "webhooks:\n  outbound:\n    - secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", "webhooks.outbound[0].url", 3},
		{"outbound secret not whsec", "webhooks:\n  outbound:\n    - url: \"https://crm.example/hook\"\n      secret: s\n", "webhooks.outbound[0].secret", 4},
		{"outbound event unknown", "webhooks:\n  outbound:\n    - url: \"https://crm.example/hook\"\n      secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n      events: [message.relayed]\n", "webhooks.outbound[0].events[0]", 5},
		{"outbound secret twice", "webhooks:\n  outbound:\n    - url: \"https://crm.example/hook\"\n      secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n      secret_file: KEY\n", "webhooks.outbound[0].secret", 4},
		{"crm secret short", "webhooks:\n  crm:\n    secret: whsec_YWJj\n", "webhooks.crm.secret", 3},
		{"crm tolerance", "webhooks:\n  crm:\n    tolerance: 2h\n", "webhooks.crm.tolerance", 3},
		{"mailchimp secret short", "webhooks:\n  mailchimp:\n    secret: s1\n    lists: {abc: newsletter}\n", "webhooks.mailchimp.secret", 3},
		{"mailchimp lists without secret", "webhooks:\n  mailchimp:\n    lists: {abc: newsletter}\n", "webhooks.mailchimp.secret", 2},
		{"mandrill key without url", "webhooks:\n  mandrill:\n    key: k\n", "webhooks.mandrill.url", 2},
		{"dedup window", "webhooks:\n  dedup_window: 1s\n", "webhooks.dedup_window", 2},
		{"dead_after", "webhooks:\n  outbox:\n    dead_after: 1s\n", "webhooks.outbox.dead_after", 3},
		{"mandrill url", "webhooks:\n  mandrill:\n    url: /webhooks/mandrill\n", "webhooks.mandrill.url", 3},
		{"mailchimp_api purpose", "webhooks:\n  mailchimp_api:\n    api_key_file: KEY\n    list_id: l\n    purpose: nope\n", "webhooks.mailchimp_api.purpose", 5},
		{"mailchimp_api list_id", "webhooks:\n  mailchimp_api:\n    api_key_file: KEY\n", "webhooks.mailchimp_api.list_id", 2},
		// dkim
		{"dkim domain", "dkim:\n  - {selector: s1, key_file: k.pem}\n", "dkim[0].domain", 2},
		{"dkim selector", "dkim:\n  - {domain: example.com, key_file: k.pem}\n", "dkim[0].selector", 2},
		{"dkim key_file", "dkim:\n  - domain: example.com\n    selector: s1\n", "dkim[0].key_file", 2},
		{"dkim pair repeated", "dkim:\n  - {domain: example.com, selector: s1, key_file: a.pem}\n  - domain: Example.COM\n    selector: S1\n    key_file: b.pem\n", "dkim[1].selector", 4},
		// secrets
		{"password_file missing", "upstream:\n  url: smtp://mail\n  username: u\n  password_file: DIR/none\n", "upstream.password_file", 4},
		{"token_file missing", "admin:\n  tokens:\n    - name: a\n      token_file: DIR/none\n      scopes: [read]\n", "admin.tokens[0].token_file", 4},
		{"api_key_file missing", "webhooks:\n  mailchimp_api: {api_key_file: DIR/none, list_id: l}\n", "webhooks.mailchimp_api.api_key_file", 2},
		{"secret file empty", "admin:\n  tokens:\n    - name: a\n      token_file: DIR/empty\n      scopes: [read]\n", "admin.tokens[0].token_file", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cert, key := writeKeyPair(t, dir)
			writeFile(t, dir, "empty", " \n")
			text := strings.NewReplacer(
				"HASH", `"`+testHash(t)+`"`,
				"CERT", cert, "KEY", key, "DIR", dir,
				"SHA", strings.Repeat("ab", 32),
			).Replace(tt.text)
			_, errs := loadPath(t, writeFile(t, dir, "config.yaml", text))
			findProblem(t, errs, tt.key, tt.line)
		})
	}
}

// TestValidValues: forms that validation must accept.
func TestValidValues(t *testing.T) {
	tests := []struct{ name, text string }{
		{"tls pair loads", "smtp:\n  tls: {cert_file: CERT, key_file: KEY}\n  tls_listen: \":465\"\n"},
		{"bare addresses as networks", "smtp: {trusted_networks: [192.0.2.1, \"2001:db8::1\", 10.1.2.3/8]}\n"},
		{"smtp upstream without port", "upstream: {url: smtp://mail.example.net}\n"},
		{"smtps upstream with port", "upstream: {url: \"smtps://mail.example.net:4650\"}\n"},
		{"file upstream relative", "upstream: {url: file://outbox}\n"},
		{"file upstream absolute", "upstream: {url: \"file:///var/spool/outbox\"}\n"},
		{"upstream credentials", "upstream: {url: smtp://mail, username: u, password_file: KEY}\n"},
		{"rediss", "store: {redis: {url: \"rediss://user:pw@redis.example.net:6380/2\"}}\n"},
		{"sentinel", "store: {redis: {sentinel: {master: mymaster, addrs: [\"s1:26379\", \"s2:26379\"]}}}\n"},
		{"cluster", "store: {redis: {cluster_addrs: [\"c1:6379\", \"c2:6379\"]}, path: \"\"}\n"},
		{"empty default purpose", "policy: {default_purpose: \"\"}\n"},
		{"webhooks set", "webhooks:\n  mailchimp: {secret: abcdefghijklmnopqrstuvwxyz, lists: {abc: newsletter}}\n  crm: {secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, tolerance: 10m}\n  mandrill: {key: k, url: \"https://x.example/webhooks/mandrill\"}\n  outbound: [{url: \"https://crm.example/hook\", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, events: [consent.withdrawn]}]\n  outbox: {dead_after: 1d, retired_for: 30d}\n"},
		{"uppercase sha256", "admin: {tokens: [{name: a, token_sha256: " + strings.Repeat("AB", 32) + ", scopes: [read, write, erase]}]}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cert, key := writeKeyPair(t, dir)
			text := strings.NewReplacer("CERT", cert, "KEY", key).Replace(tt.text)
			if _, errs := loadPath(t, writeFile(t, dir, "config.yaml", text)); errs != nil {
				t.Fatalf("unexpected problems:\n%v", errs)
			}
		})
	}
}

// Beside Sentinel or Cluster addresses, url is where the password and TLS
// come from, so the two together load.
func TestRedisCredentialsBesideSentinel(t *testing.T) {
	for _, text := range []string{
		"store:\n  redis:\n    url: rediss://:s3cret@redis/0\n    sentinel: {master: m, addrs: [\"10.0.0.1:26379\"]}\n",
		"store:\n  redis:\n    url: rediss://:s3cret@redis/0\n    cluster_addrs: [\"10.0.0.1:6379\"]\n",
	} {
		if c := mustLoad(t, text); !c.Store.UsesRedis() {
			t.Errorf("not a Redis store:\n%s", text)
		}
	}
}
