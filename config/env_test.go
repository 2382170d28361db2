package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEnvOverrides(t *testing.T) {
	tests := []struct {
		name string
		file string // "" for no file
		env  []string
		// check inspects a successful load; nil when a problem is wanted.
		check func(t *testing.T, c *Config)
		// key and env of the wanted problem.
		wantKey, wantEnv string
	}{
		{
			name: "scalar string",
			env:  []string{"OPTINPROXY_SMTP_LISTEN=0.0.0.0:25"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.SMTP.Listen, "0.0.0.0:25")
			},
		},
		{
			name: "int with underscores in the key",
			env:  []string{"OPTINPROXY_SMTP_MAX_MESSAGE_BYTES=1048576"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.SMTP.MaxMessageBytes, int64(1<<20))
			},
		},
		{
			name: "keys that start alike (max_connections, max_connections_per_ip)",
			env: []string{"OPTINPROXY_SMTP_MAX_CONNECTIONS=300", "OPTINPROXY_SMTP_MAX_CONNECTIONS_PER_IP=30",
				"OPTINPROXY_SMTP_MAX_INFLIGHT_BYTES=1048576", "OPTINPROXY_SMTP_MAX_MESSAGE_BYTES=524288"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.SMTP.MaxConnections, 300)
				eq(t, c.SMTP.MaxConnectionsPerIP, 30)
				eq(t, c.SMTP.MaxInflightBytes, int64(1<<20))
			},
		},
		{
			name:    "bad value of a key that starts like another",
			env:     []string{"OPTINPROXY_SMTP_MAX_CONNECTIONS_PER_IP=0"},
			wantKey: "smtp.max_connections_per_ip", wantEnv: "OPTINPROXY_SMTP_MAX_CONNECTIONS_PER_IP",
		},
		{
			name: "duration",
			env:  []string{"OPTINPROXY_UPSTREAM_DEDUP_WINDOW=2d"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.Upstream.DedupWindow, Duration(48*time.Hour))
			},
		},
		{
			name: "bool",
			env:  []string{"OPTINPROXY_SMTP_BLOCKED_DSN=true"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.SMTP.BlockedDSN, true)
			},
		},
		{
			name: "footer off, a template by map key",
			env:  []string{"OPTINPROXY_UNSUBSCRIBE_FOOTER=false", "OPTINPROXY_UNSUBSCRIBE_TEMPLATES_EN_TEXT=Bye {{unsubscribe_url}}"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.Unsubscribe.Footer, false)
				eq(t, c.Unsubscribe.Templates["en"].Text, "Bye {{unsubscribe_url}}")
			},
		},
		{
			name: "nested key, longest tag wins (tls_listen over tls)",
			file: "smtp: {tls: {cert_file: \"CERT\", key_file: \"KEY\"}}\n",
			env:  []string{"OPTINPROXY_SMTP_TLS_LISTEN=:465"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.SMTP.TLSListen, ":465")
			},
		},
		{
			name: "nested struct after a shorter tag",
			env:  []string{"OPTINPROXY_STORE_REDIS_URL=redis://localhost:6379/1", "OPTINPROXY_STORE_REDIS_KEY_PREFIX=x:"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.Store.Redis.URL, "redis://localhost:6379/1")
				eq(t, c.Store.Redis.KeyPrefix, "x:")
			},
		},
		{
			name: "string list as YAML flow",
			env:  []string{"OPTINPROXY_SMTP_TRUSTED_NETWORKS=[10.0.0.0/8, '::1/128']"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.SMTP.TrustedNetworks, []string{"10.0.0.0/8", "::1/128"})
			},
		},
		{
			name: "string list comma-separated",
			env:  []string{"OPTINPROXY_SMTP_TRUSTED_NETWORKS=10.0.0.0/8, 192.168.0.0/16,::1"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.SMTP.TrustedNetworks, []string{"10.0.0.0/8", "192.168.0.0/16", "::1"})
			},
		},
		{
			name: "empty list",
			env:  []string{"OPTINPROXY_SMTP_TRUSTED_NETWORKS=[]"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.SMTP.TrustedNetworks, []string{})
			},
		},
		{
			name: "nested list with underscores",
			env:  []string{"OPTINPROXY_POLICY_ROLE_ADDRESSES_ADD=kantoor,receptie"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.Policy.RoleAddresses.Add, []string{"kantoor", "receptie"})
			},
		},
		{
			name: "list of structs",
			env:  []string{`OPTINPROXY_SMTP_USERS=[{username: crm, password_hash: "HASH", from_domains: [example.com]}]`},
			check: func(t *testing.T, c *Config) {
				eq(t, len(c.SMTP.Users), 1)
				eq(t, c.SMTP.Users[0].Username, "crm")
				eq(t, c.SMTP.Users[0].FromDomains, []string{"example.com"})
			},
		},
		{
			name: "map purpose field changes only that field of the default",
			env:  []string{"OPTINPROXY_PURPOSES_NEWSLETTER_RETENTION=365d", "OPTINPROXY_PURPOSES_NEWSLETTER_DOUBLE_OPT_IN=true"},
			check: func(t *testing.T, c *Config) {
				want := Default().Purposes
				n := want["newsletter"]
				n.Retention = Duration(365 * day)
				n.DoubleOptIn = true
				want["newsletter"] = n
				eq(t, c.Purposes, want)
			},
		},
		{
			name: "map purpose field on a purpose of the file with a hyphen",
			file: "policy: {default_purpose: product-updates}\npurposes:\n  product-updates: {basis: consent, category: marketing}\n",
			env:  []string{"OPTINPROXY_PURPOSES_PRODUCT_UPDATES_ROLE_ADDRESSES=require_consent"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.Purposes["product-updates"], Purpose{Basis: "consent", Category: "marketing", RoleAddresses: "require_consent"})
				eq(t, len(c.Purposes), 3)
			},
		},
		{
			name: "map of plain values",
			env:  []string{"OPTINPROXY_WEBHOOKS_MAILCHIMP_LISTS_ABC123=newsletter", "OPTINPROXY_WEBHOOKS_MAILCHIMP_SECRET=abcdefghijklmnopqrstuvwxyz"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.Webhooks.Mailchimp.Lists, map[string]string{"abc123": "newsletter"})
			},
		},
		{
			name: "whole map as YAML, added to the built-ins",
			env: []string{"OPTINPROXY_PURPOSES={orders: {basis: contract, category: transactional}}",
				"OPTINPROXY_POLICY_DEFAULT_PURPOSE=orders"},
			check: func(t *testing.T, c *Config) {
				want := Default().Purposes
				want["orders"] = Purpose{Basis: "contract", Category: "transactional"}
				eq(t, c.Purposes, want)
			},
		},
		{
			name: "env beats file",
			file: "smtp:\n  listen: 127.0.0.1:2526\n  max_recipients: 10\n",
			env:  []string{"OPTINPROXY_SMTP_LISTEN=127.0.0.1:2527"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.SMTP.Listen, "127.0.0.1:2527")
				eq(t, c.SMTP.MaxRecipients, 10)
			},
		},
		{
			name: "string taken literally",
			env:  []string{"OPTINPROXY_POLICY_CURRENT_VERSION=2027-01: # not yaml"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.Policy.CurrentVersion, "2027-01: # not yaml")
			},
		},
		{
			name: "CLI variables are ignored",
			env:  []string{"OPTINPROXY_ADDR=http://x", "OPTINPROXY_TOKEN=t", "OPTINPROXY_CONFIG=/nowhere", "OTHER_SMTP_LISTEN=x"},
			check: func(t *testing.T, c *Config) {
				eq(t, c, Default())
			},
		},
		{
			name:    "unknown OPTINPROXY_ variable",
			env:     []string{"OPTINPROXY_SMTP_LISTN=x"},
			wantEnv: "OPTINPROXY_SMTP_LISTN",
		},
		{
			name:    "path into a list is not a key",
			env:     []string{"OPTINPROXY_SMTP_USERS_0_USERNAME=x"},
			wantEnv: "OPTINPROXY_SMTP_USERS_0_USERNAME",
		},
		{
			name:    "map entry field that does not exist",
			env:     []string{"OPTINPROXY_PURPOSES_NEWSLETTER_COLOUR=red"},
			wantEnv: "OPTINPROXY_PURPOSES_NEWSLETTER_COLOUR",
		},
		{
			name:    "whole map entry that is not a mapping",
			env:     []string{"OPTINPROXY_PURPOSES_NEWSLETTER=red"},
			wantKey: "purposes.newsletter", wantEnv: "OPTINPROXY_PURPOSES_NEWSLETTER",
		},
		{
			name:    "bad int",
			env:     []string{"OPTINPROXY_SMTP_MAX_RECIPIENTS=lots"},
			wantKey: "smtp.max_recipients", wantEnv: "OPTINPROXY_SMTP_MAX_RECIPIENTS",
		},
		{
			name:    "bad value caught by validation",
			file:    "smtp: {listen: 127.0.0.1:25}\n",
			env:     []string{"OPTINPROXY_SMTP_LISTEN=nowhere"},
			wantKey: "smtp.listen", wantEnv: "OPTINPROXY_SMTP_LISTEN",
		},
		{
			name:    "bad YAML in a whole value",
			env:     []string{"OPTINPROXY_SMTP_USERS=[{username: crm"},
			wantKey: "smtp.users", wantEnv: "OPTINPROXY_SMTP_USERS",
		},
		{
			name:    "problem inside a list of structs names the variable",
			env:     []string{"OPTINPROXY_SMTP_USERS=[{username: crm, password_hash: nope}]"},
			wantKey: "smtp.users[0].password_hash", wantEnv: "OPTINPROXY_SMTP_USERS",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := testHash(t)
			env := make([]string, len(tt.env))
			for i, e := range tt.env {
				env[i] = strings.ReplaceAll(e, "HASH", hash)
			}
			path := ""
			if tt.file != "" {
				dir := t.TempDir()
				file := tt.file
				if strings.Contains(file, "CERT") {
					cert, key := writeKeyPair(t, dir)
					file = strings.NewReplacer("CERT", cert, "KEY", key).Replace(file)
				}
				path = writeFile(t, dir, "config.yaml", file)
			}
			cfg, errs := loadPath(t, path, env...)
			if tt.check != nil {
				if errs != nil {
					t.Fatalf("unexpected problems:\n%v", errs)
				}
				tt.check(t, cfg)
				return
			}
			if errs == nil {
				t.Fatal("no problem reported")
			}
			for _, p := range errs.Problems {
				if p.Key == tt.wantKey && p.Env == tt.wantEnv && p.Line == 0 {
					if !strings.Contains(errs.Error(), tt.wantEnv+": ") {
						t.Fatalf("Error() does not name the variable:\n%v", errs)
					}
					return
				}
			}
			t.Fatalf("no problem with key %q from %s in:\n%v", tt.wantKey, tt.wantEnv, errs)
		})
	}
}

// TestResolveEnv pins the mapping of variable names onto key paths.
func TestResolveEnv(t *testing.T) {
	tests := []struct{ in, want string }{
		{"smtp_listen", "smtp.listen"},
		{"smtp_tls_listen", "smtp.tls_listen"},
		{"smtp_tls_cert_file", "smtp.tls.cert_file"},
		{"store_redis_sentinel_master", "store.redis.sentinel.master"},
		{"webhooks_mailchimp_api_api_key_file", "webhooks.mailchimp_api.api_key_file"},
		{"webhooks_mailchimp_secret", "webhooks.mailchimp.secret"},
		{"purposes_a_b_retention", "purposes.a_b.retention"},
		{"purposes_news_role_addresses", "purposes.news.role_addresses"},
		{"purposes_news", "purposes.news"},
		{"smtp", "smtp"},
		{"smtp_", ""},
		{"nope", ""},
		{"smtp_listen_x", ""},
	}
	for _, tt := range tests {
		path, ok := resolveEnv(tt.in, reflect.TypeFor[Config]())
		got := ""
		if ok {
			got = pathString(path)
		}
		if got != tt.want {
			t.Errorf("resolveEnv(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func eq(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
}

// A variable that names no key points at the variable of the key it most
// likely meant, as an unknown key of the file does; one far from every
// key is only unknown.
func TestUnknownVariableHint(t *testing.T) {
	for in, want := range map[string]string{
		"OPTINPROXY_SMTP_LISTN=x":               "OPTINPROXY_SMTP_LISTN: unknown configuration key (did you mean OPTINPROXY_SMTP_LISTEN?)",
		"OPTINPROXY_STORE_REDIS_URI=x":          "OPTINPROXY_STORE_REDIS_URI: unknown configuration key (did you mean OPTINPROXY_STORE_REDIS_URL?)",
		"OPTINPROXY_HTTP_TRUSTED_PROXY=x":       "OPTINPROXY_HTTP_TRUSTED_PROXY: unknown configuration key (did you mean OPTINPROXY_HTTP_TRUSTED_PROXIES?)",
		"OPTINPROXY_POLICY_RETENTION_NOTCE=30d": "(did you mean OPTINPROXY_POLICY_RETENTION_NOTICE?)",
		"OPTINPROXY_REDIS_URL=x":                "OPTINPROXY_REDIS_URL: unknown configuration key (did you mean OPTINPROXY_STORE_REDIS_URL?)",
		"OPTINPROXY_LISTEN=x":                   "OPTINPROXY_LISTEN: unknown configuration key\n",
		"OPTINPROXY_BOGUS=1":                    "OPTINPROXY_BOGUS: unknown configuration key\n",
	} {
		_, errs := loadPath(t, "", in)
		if errs == nil || !strings.Contains(errs.Error()+"\n", want) {
			t.Errorf("%s: got %v, want %q", in, errs, want)
		}
	}
}
