package config

import (
	"os"
	"reflect"
	"testing"
	"time"
)

// TestDocumentedDefaults checks every documented default.
func TestDocumentedDefaults(t *testing.T) {
	d := Default()
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	tests := []struct {
		key       string
		got, want any
	}{
		{"smtp.listen", d.SMTP.Listen, "127.0.0.1:2525"},
		{"smtp.tls_listen", d.SMTP.TLSListen, ""},
		{"smtp.hostname", d.SMTP.Hostname, host},
		{"smtp.tls", d.SMTP.TLS, TLS{}},
		{"smtp.trusted_networks", d.SMTP.TrustedNetworks, []string{"127.0.0.0/8", "::1/128"}},
		{"smtp.max_message_bytes", d.SMTP.MaxMessageBytes, int64(26214400)},
		{"smtp.max_recipients", d.SMTP.MaxRecipients, 1000},
		{"smtp.max_connections", d.SMTP.MaxConnections, 1000},
		{"smtp.max_connections_per_ip", d.SMTP.MaxConnectionsPerIP, 100},
		{"smtp.max_inflight_bytes", d.SMTP.MaxInflightBytes, int64(1073741824)},
		{"smtp.blocked_dsn", d.SMTP.BlockedDSN, false},
		{"smtp.read_timeout", d.SMTP.ReadTimeout, Duration(5 * time.Minute)},
		{"smtp.write_timeout", d.SMTP.WriteTimeout, Duration(time.Minute)},
		{"smtp.users", d.SMTP.Users, []User{}},
		{"upstream.url", d.Upstream.URL, "file://./data/outbox"},
		{"upstream.username", d.Upstream.Username, ""},
		{"upstream.password_file", d.Upstream.PasswordFile, ""},
		{"upstream.starttls", d.Upstream.StartTLS, "opportunistic"},
		{"upstream.dedup_window", d.Upstream.DedupWindow, Duration(24 * time.Hour)},
		{"upstream.timeout", d.Upstream.Timeout, Duration(time.Minute)},
		{"upstream.pool_size", d.Upstream.PoolSize, 20},
		{"http.listen", d.HTTP.Listen, "127.0.0.1:8080"},
		{"http.public_url", d.HTTP.PublicURL, "http://127.0.0.1:8080"},
		{"store.path", d.Store.Path, "./data"},
		{"store.redis", d.Store.Redis, Redis{Sentinel: Sentinel{Addrs: []string{}}, ClusterAddrs: []string{}, KeyPrefix: "optin:"}},
		{"policy", d.Policy, Policy{Mode: "enforce", DefaultPurpose: "newsletter", CurrentVersion: "2026-01",
			ReceiptRetention: Duration(400 * 24 * time.Hour), RoleAddresses: RoleAddresses{Add: []string{}, Remove: []string{}},
			RetentionNotice: Duration(30 * 24 * time.Hour), PendingExpiry: Duration(7 * 24 * time.Hour), PortalLinkTTL: Duration(24 * time.Hour)}},
		{"notices", d.Notices, Notices{}},
		{"controller", d.Controller, Controller{}},
		{"store.key_file (resolved)", d.Store.KeyPath(), "data/ledger.key"},
		{"purposes", d.Purposes, map[string]Purpose{
			"newsletter": {Basis: "consent", Category: "marketing", Retention: Duration(730 * 24 * time.Hour),
				DoubleOptIn: false, Description: "Our monthly newsletter"},
			"transactional": {Basis: "contract", Category: "transactional"},
		}},
		{"unsubscribe", d.Unsubscribe, Unsubscribe{SecretFile: "./data/unsubscribe.key", PreviousSecrets: []string{}, Language: "nl",
			Footer: true, Templates: map[string]FooterTemplate{}}},
		{"admin.tokens", d.Admin.Tokens, []Token{}},
		{"webhooks", d.Webhooks, Webhooks{
			DedupWindow:  Duration(72 * time.Hour),
			Mailchimp:    Mailchimp{Lists: map[string]string{}},
			CRM:          CRM{Tolerance: Duration(5 * time.Minute)},
			Outbound:     []Outbound{},
			Outbox:       Outbox{DeadAfter: Duration(72 * time.Hour), RetiredFor: Duration(7 * 24 * time.Hour)},
			MailchimpAPI: MailchimpAPI{Purpose: "newsletter"},
		}},
		{"dkim", d.DKIM, []DKIM{}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("default %s = %#v, want %#v", tt.key, tt.got, tt.want)
		}
	}
}

// TestDefaultIsFresh: changing one Default must not change the next.
func TestDefaultIsFresh(t *testing.T) {
	a := Default()
	a.Purposes["x"] = Purpose{}
	a.SMTP.TrustedNetworks[0] = "0.0.0.0/0"
	b := Default()
	if _, ok := b.Purposes["x"]; ok || b.SMTP.TrustedNetworks[0] != "127.0.0.0/8" {
		t.Fatal("Default shares maps or slices between calls")
	}
}

// TestZeroConfig: no file and no environment give exactly the defaults,
// and the defaults pass validation.
func TestZeroConfig(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load with no file: %v", err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("zero-config differs from Default:\n%+v\n%+v", cfg, Default())
	}
}

// TestEmptyFiles: a file without keys changes nothing.
func TestEmptyFiles(t *testing.T) {
	for _, text := range []string{"", "\n", "# only a comment\n", "---\n", "~\n", "smtp:\n", "smtp:\n  # listen: x\n"} {
		cfg, errs := loadYAML(t, text)
		if errs != nil {
			t.Errorf("%q: %v", text, errs)
			continue
		}
		if !reflect.DeepEqual(cfg, Default()) {
			t.Errorf("%q: config differs from Default", text)
		}
	}
}
