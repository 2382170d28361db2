package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// Warnings returns advice on a loaded configuration: settings that work
// but are likely not what a production relay wants. They never stop the
// server; check-config and serve print them. The order is stable.
func (c *Config) Warnings() []string {
	var w []string
	add := func(format string, args ...any) { w = append(w, fmt.Sprintf(format, args...)) }

	if u, err := url.Parse(c.HTTP.PublicURL); err == nil {
		links := c.linksInMail()
		if u.Scheme != "https" {
			add("http.public_url is not https: the links put in mail (%s) travel unencrypted", links)
		}
		if isLoopbackHost(u.Hostname()) {
			add("http.public_url points at %s: the links put in mail (%s) work only on this machine", u.Hostname(), links)
		}
	}

	for _, p := range c.HTTP.TrustedProxyPrefixes() {
		if p.Bits() == 0 {
			add("http.trusted_proxies includes %s: any client can name the IP recorded as its evidence with X-Forwarded-For", p)
		}
	}

	tlsSet := c.SMTP.TLS.CertFile != ""
	for _, p := range c.SMTP.TrustedPrefixes() {
		switch {
		case p.Bits() == 0:
			add("smtp.trusted_networks includes %s: anyone who reaches the listener may relay", p)
		case !p.Addr().IsLoopback() && !tlsSet:
			add("smtp.trusted_networks includes %s but smtp.tls is not set: mail from there travels unencrypted", p)
		}
	}
	if len(c.SMTP.Users) > 0 {
		// Users suggest every client should log in, but the default
		// trusted networks let anything on this machine relay without.
		var loopback []string
		for _, p := range c.SMTP.TrustedPrefixes() {
			if p.Bits() > 0 && p.Addr().IsLoopback() {
				loopback = append(loopback, p.String())
			}
		}
		if len(loopback) > 0 {
			add("smtp.users are configured but smtp.trusted_networks includes loopback (%s): clients on this machine relay without AUTH; set smtp.trusted_networks: [] to require AUTH from every client",
				strings.Join(loopback, ", "))
		}
	}
	if len(c.SMTP.Users) > 0 && !tlsSet {
		add("smtp.users are configured but smtp.tls is not: clients can authenticate only from loopback")
	}

	if !c.Store.UsesRedis() && !c.ledgerKeyInEnv && within(c.Store.KeyPath(), c.Store.Path) {
		add("store.key_file %s lies in store.path: a backup of %s also carries the key that unlocks it; keep the key file out of the store's backups, or set store.key_file elsewhere",
			c.Store.KeyPath(), c.Store.Path)
	}

	if _, ok := c.Purposes["transactional"]; !ok {
		add("%s", transactionalGone(c.Purposes))
	}

	if c.Policy.Mode == ModeMonitor {
		add("policy.mode is monitor: decisions are recorded but every recipient gets the mail")
	}
	if c.Policy.DefaultPurpose == "" {
		add("policy.default_purpose is empty: mail without X-Optin-Purpose from a user without default_purpose is refused")
	}

	switch scheme, addr, err := c.Upstream.Target(); {
	case err != nil:
	case scheme == SchemeFile:
		add("upstream.url is file://: mail is written to %s, not delivered", addr)
	case scheme == SchemeSMTP && c.Upstream.StartTLS != StartTLSRequired:
		if host, _, _ := net.SplitHostPort(addr); !isLoopbackHost(host) {
			add("upstream.starttls is %s: mail goes to %s unencrypted if it does not offer STARTTLS", c.Upstream.StartTLS, addr)
		}
	}

	// Webhooks come in over http.listen, reached at public_url.
	if u, err := url.Parse(c.HTTP.PublicURL); err == nil && u.Scheme != "https" && c.Webhooks.Mailchimp.Secret != "" {
		add("webhooks.mailchimp.secret is set but http.public_url is not https: Mailchimp's deliveries, and the secret in their URL, travel unencrypted")
	}
	for _, o := range c.Webhooks.Outbound {
		if u, err := url.Parse(o.URL); err == nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
			add("webhooks.outbound %s is http: the events, with the addresses they name, travel unencrypted", u.Redacted())
		}
	}
	return w
}

// within reports whether path lies in dir (both as given, cleaned).
func within(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// linksInMail names the links that mail carries to http.public_url: the
// portal's always (the /p page mails them), unsubscribe and confirmation
// links only for the purposes that put them in.
func (c *Config) linksInMail() string {
	var unsub, confirm []string
	for _, name := range slices.Sorted(maps.Keys(c.Purposes)) {
		p := c.Purposes[name]
		if p.UnsubscribeEnabled() {
			unsub = append(unsub, name)
		}
		if p.DoubleOptIn {
			confirm = append(confirm, name)
		}
	}
	links := []string{"portal links"}
	if len(unsub) > 0 {
		links = append(links, "unsubscribe links of "+strings.Join(unsub, ", "))
	}
	if len(confirm) > 0 {
		links = append(links, "double opt-in confirmation links of "+strings.Join(confirm, ", "))
	}
	return strings.Join(links, "; ")
}

// transactionalGone words the warning for a disabled built-in
// transactional purpose: the mail a CRM sends under it is refused from
// then on, which is rarely what disabling it was meant to do.
func transactionalGone(purposes map[string]Purpose) string {
	var others []string
	for _, name := range slices.Sorted(maps.Keys(purposes)) {
		if purposes[name].Category == CategoryTransactional {
			others = append(others, name)
		}
	}
	const gone = "purposes.transactional is disabled: mail naming it in X-Optin-Purpose is refused as of an unknown purpose; "
	if len(others) == 0 {
		return gone + "no purpose of category transactional is left, so transactional mail (order confirmations, password resets) will need one: add it under purposes and name it in X-Optin-Purpose"
	}
	return gone + "transactional mail (order confirmations, password resets) will need to name " + strings.Join(others, " or ") + " instead"
}
