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
		if u.Scheme != "https" {
			add("http.public_url is not https: unsubscribe and portal links in mail travel unencrypted")
		}
		if isLoopbackHost(u.Hostname()) {
			add("http.public_url points at %s: links in mail work only on this machine", u.Hostname())
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

	if !c.Store.UsesRedis() && within(c.Store.KeyPath(), c.Store.Path) {
		add("store.key_file %s lies in store.path: a backup of %s also carries the key that unlocks it; keep the key file out of the store's backups, or set store.key_file elsewhere",
			c.Store.KeyPath(), c.Store.Path)
	}

	// A purposes block lists all the purposes there are (decode.go): a
	// built-in left out is gone, which a file adding one purpose rarely
	// means.
	for _, name := range slices.Sorted(maps.Keys(Default().Purposes)) {
		if _, ok := c.Purposes[name]; !ok {
			add("purposes does not list the built-in %s, so it is not configured: mail and API calls naming it are refused; the purposes listed are all there are, so to keep it add to purposes: %s", name, builtinPurpose(name))
		}
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

// builtinPurpose is the built-in purpose name as one line of YAML.
func builtinPurpose(name string) string {
	p := Default().Purposes[name]
	fields := []string{"basis: " + p.Basis, "category: " + p.Category}
	if p.Retention > 0 {
		fields = append(fields, "retention: "+p.Retention.String())
	}
	if p.Description != "" {
		fields = append(fields, fmt.Sprintf("description: %q", p.Description))
	}
	return name + ": {" + strings.Join(fields, ", ") + "}"
}
