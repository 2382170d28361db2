package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestUnsubscribeEnabled(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		p    Purpose
		want bool
	}{
		{Purpose{Category: CategoryMarketing}, true},                        // marketing defaults to links
		{Purpose{Category: CategoryTransactional}, false},                   // others do not
		{Purpose{Category: CategoryLegal}, false},                           //
		{Purpose{Category: CategoryMarketing, Unsubscribe: &no}, false},     // explicit off
		{Purpose{Category: CategoryTransactional, Unsubscribe: &yes}, true}, // explicit on
	}
	for _, tt := range tests {
		if got := tt.p.UnsubscribeEnabled(); got != tt.want {
			t.Errorf("%+v: UnsubscribeEnabled() = %v, want %v", tt.p, got, tt.want)
		}
	}
	// Loaded from a file, the pointer distinguishes unset from false.
	cfg := mustLoad(t, lines(
		"purposes:",
		"  newsletter: {basis: consent, category: marketing}",
		"  quiet: {basis: consent, category: marketing, unsubscribe: false}",
	))
	if !cfg.Purposes["newsletter"].UnsubscribeEnabled() || cfg.Purposes["quiet"].UnsubscribeEnabled() {
		t.Fatal("unsubscribe key not honoured")
	}
}

func TestUpstreamTarget(t *testing.T) {
	tests := []struct {
		url, scheme, addr string
		bad               bool
	}{
		{url: "file://./data/outbox", scheme: "file", addr: "./data/outbox"},
		{url: "file://data/outbox", scheme: "file", addr: "data/outbox"},
		{url: "file://outbox", scheme: "file", addr: "outbox"},
		{url: "file:///var/outbox", scheme: "file", addr: "/var/outbox"},
		{url: "file://../out", scheme: "file", addr: "../out"},
		{url: "smtp://mail.example.net", scheme: "smtp", addr: "mail.example.net:25"},
		{url: "smtps://mail.example.net", scheme: "smtps", addr: "mail.example.net:465"},
		{url: "smtp://mail.example.net:587", scheme: "smtp", addr: "mail.example.net:587"},
		{url: "smtp://[2001:db8::1]:2525", scheme: "smtp", addr: "[2001:db8::1]:2525"},
		{url: "smtp://mail/path", bad: true},
		{url: "smtp://", bad: true},
		{url: "smtp://mail:0", bad: true},
		{url: "lmtp://mail", bad: true},
		{url: "", bad: true},
		{url: "file://", bad: true},
		{url: "file://x?y=1", bad: true},
	}
	for _, tt := range tests {
		scheme, addr, err := Upstream{URL: tt.url}.Target()
		if tt.bad {
			if err == nil {
				t.Errorf("Target(%q) = %q %q, want an error", tt.url, scheme, addr)
			}
			continue
		}
		if err != nil || scheme != tt.scheme || addr != tt.addr {
			t.Errorf("Target(%q) = %q, %q, %v; want %q, %q", tt.url, scheme, addr, err, tt.scheme, tt.addr)
		}
	}
}

func TestTrustedPrefixes(t *testing.T) {
	// Peers are compared unmapped and without a zone: so are the networks.
	s := SMTP{TrustedNetworks: []string{"127.0.0.0/8", "::1/128", "192.0.2.7", "2001:db8::1", "10.1.2.3/8", "::ffff:172.16.0.0/108", "::ffff:192.0.2.8", "fe80::1%eth0"}}
	want := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.0.2.8/32"),
		netip.MustParsePrefix("fe80::1/128"),
	}
	if got := s.TrustedPrefixes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := (SMTP{TrustedNetworks: []string{}}).TrustedPrefixes(); len(got) != 0 {
		t.Fatalf("empty list gave %v", got)
	}
}

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir)
	pw := writeFile(t, dir, "pw", "x")
	quiet := lines(
		"smtp: {tls: {cert_file: "+cert+", key_file: "+key+"}, trusted_networks: [10.0.0.0/8]}",
		"http: {public_url: \"https://optin.example.com\"}",
		"upstream: {url: smtp://mail.example.net, starttls: required, username: u, password_file: "+pw+"}",
		"store: {path: /var/lib/optinproxy, key_file: /etc/optinproxy/ledger.key}",
	)
	if w := mustLoad(t, quiet).Warnings(); len(w) != 0 {
		t.Fatalf("a production configuration got warnings: %q", w)
	}

	// Users with nothing trusted: AUTH is asked of every client.
	authOnly := "smtp: {trusted_networks: [], users: [{username: a, password_hash: \"" + testHash(t) + "\"}]}\n"
	if w := strings.Join(mustLoad(t, authOnly).Warnings(), "\n"); strings.Contains(w, "includes loopback") {
		t.Errorf("loopback warned about while smtp.trusted_networks is empty: %s", w)
	}

	// Warnings only for what is on: no unsubscribe links are put in
	// without a purpose that adds them, no key file is used when the
	// key comes from the environment, and transactional is kept.
	noLinks := mustLoad(t, "purposes: {newsletter: {unsubscribe: false}}\n", "OPTINPROXY_LEDGER_KEY=whatever")
	for _, w := range noLinks.Warnings() {
		for _, off := range []string{"unsubscribe links", "confirmation links", "store.key_file", "purposes.transactional"} {
			if strings.Contains(w, off) {
				t.Errorf("warning about %s, which is off: %s", off, w)
			}
		}
	}

	tests := []struct {
		name, text, want string
	}{
		{"public_url http", "http: {public_url: \"http://optin.example.com\"}\n", "http.public_url is not https"},
		{"public_url loopback", "", "http.public_url points at 127.0.0.1: the links put in mail (portal links; unsubscribe links of newsletter) work only on this machine"},
		{"public_url http, confirmation links", "purposes: {newsletter: {double_opt_in: true}}\n",
			"http.public_url is not https: the links put in mail (portal links; unsubscribe links of newsletter; double opt-in confirmation links of newsletter) travel unencrypted"},
		{"trusted without tls", "smtp: {trusted_networks: [10.0.0.0/8]}\n", "10.0.0.0/8 but smtp.tls is not set"},
		{"open relay", "smtp: {trusted_networks: [0.0.0.0/0]}\n", "anyone who reaches the listener may relay"},
		{"any proxy trusted", "http: {trusted_proxies: [\"::/0\"]}\n", "http.trusted_proxies includes ::/0: any client can name the IP recorded as its evidence"},
		{"users without tls", "smtp: {users: [{username: a, password_hash: \"" + testHash(t) + "\"}]}\n", "authenticate only from loopback"},
		{"users with loopback trusted", "smtp: {users: [{username: a, password_hash: \"" + testHash(t) + "\"}]}\n",
			"smtp.users are configured but smtp.trusted_networks includes loopback (127.0.0.0/8, ::1/128): clients on this machine relay without AUTH; set smtp.trusted_networks: []"},
		{"transactional disabled", "purposes: {transactional: {enabled: false}}\n",
			"purposes.transactional is disabled: mail naming it in X-Optin-Purpose is refused as of an unknown purpose; no purpose of category transactional is left, so transactional mail (order confirmations, password resets) will need one: add it under purposes and name it in X-Optin-Purpose"},
		{"transactional disabled, another kept", "purposes: {transactional: {enabled: false}, orders: {basis: contract, category: transactional}}\n",
			"transactional mail (order confirmations, password resets) will need to name orders instead"},
		{"monitor", "policy: {mode: monitor}\n", "policy.mode is monitor"},
		{"file upstream", "", "mail is written to ./data/outbox"},
		{"opportunistic starttls", "upstream: {url: smtp://mail.example.net}\n", "unencrypted if it does not offer STARTTLS"},
		{"key file beside the store", "", "store.key_file data/ledger.key lies in store.path"},
		{"key file in the store folder", "store: {path: /srv/opt, key_file: /srv/opt/keys/ledger.key}\n", "lies in store.path"},
		{"mailchimp secret over http", "webhooks: {mailchimp: {secret: 3f1c0a9e7b2d4c6e8f0a1b2c3d4e5f60, lists: {abc: newsletter}}}\n", "the secret in their URL, travel unencrypted"},
		{"outbound over http", "webhooks: {outbound: [{url: \"http://crm.example.com/hook\", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}]}\n", "webhooks.outbound http://crm.example.com/hook is http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustLoad(t, tt.text).Warnings()
			if !strings.Contains(strings.Join(w, "\n"), tt.want) {
				t.Fatalf("warnings %q lack %q", w, tt.want)
			}
		})
	}
}
