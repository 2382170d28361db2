package config

import (
	"os"
	"time"
)

// Default returns a new Config holding exactly the documented defaults, the
// configuration `optinproxy serve` runs with when there is no file. Each
// call returns fresh maps and slices, so the caller may change them. The
// default hostname is the machine's (os.Hostname), or "localhost".
func Default() *Config {
	return &Config{
		SMTP: SMTP{
			Listen:              "127.0.0.1:2525",
			Hostname:            defaultHostname(),
			TrustedNetworks:     []string{"127.0.0.0/8", "::1/128"},
			MaxMessageBytes:     25 << 20,
			MaxRecipients:       1000,
			MaxConnections:      1000,
			MaxConnectionsPerIP: 100,
			MaxInflightBytes:    1 << 30,
			ReadTimeout:         Duration(5 * time.Minute),
			WriteTimeout:        Duration(time.Minute),
			Users:               []User{},
		},
		Upstream: Upstream{
			URL:         "file://./data/outbox",
			StartTLS:    StartTLSOpportunistic,
			DedupWindow: Duration(24 * time.Hour),
			Timeout:     Duration(time.Minute),
			PoolSize:    20,
		},
		HTTP: HTTP{
			Listen:    "127.0.0.1:8080",
			PublicURL: "http://127.0.0.1:8080",
		},
		Store: Store{
			Path: "./data",
			Redis: Redis{
				Sentinel:     Sentinel{Addrs: []string{}},
				ClusterAddrs: []string{},
				KeyPrefix:    "optin:",
			},
		},
		Policy: Policy{
			Mode:             ModeEnforce,
			DefaultPurpose:   "newsletter",
			CurrentVersion:   "2026-01",
			ReceiptRetention: Duration(400 * day),
			RoleAddresses:    RoleAddresses{Add: []string{}, Remove: []string{}},
			RetentionNotice:  Duration(30 * day),
			PendingExpiry:    Duration(7 * day),
			PortalLinkTTL:    Duration(24 * time.Hour),
		},
		Purposes: map[string]Purpose{
			"newsletter": {
				Basis:       "consent",
				Category:    CategoryMarketing,
				Retention:   Duration(730 * day),
				Description: "Our monthly newsletter",
			},
			"transactional": {
				Basis:    "contract",
				Category: CategoryTransactional,
			},
		},
		Unsubscribe: Unsubscribe{
			SecretFile:      "./data/unsubscribe.key",
			PreviousSecrets: []string{},
			Language:        "nl",
			Footer:          true,
			Templates:       map[string]FooterTemplate{},
		},
		Admin: Admin{Tokens: []Token{}},
		Webhooks: Webhooks{
			DedupWindow: Duration(72 * time.Hour),
			Mailchimp:   Mailchimp{Lists: map[string]string{}},
			CRM:         CRM{Tolerance: Duration(5 * time.Minute)},
			Outbound:    []Outbound{},
			Outbox:      Outbox{DeadAfter: Duration(72 * time.Hour), RetiredFor: Duration(7 * 24 * time.Hour)},
			// purpose: newsletter is the documented default; it only
			// matters once api_key_file is set.
			MailchimpAPI: MailchimpAPI{Purpose: "newsletter"},
		},
		DKIM: []DKIM{},
	}
}

func defaultHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
