package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
)

// Methods that read a validated Config the way the server must, so that
// the configuration's rules live in one place.

// KeyPath is the ledger key's file: store.key_file, or ledger.key in
// store.path when unset.
func (s Store) KeyPath() string {
	if s.KeyFile != "" {
		return s.KeyFile
	}
	return filepath.Join(s.Path, "ledger.key")
}

// UsesRedis reports whether Redis is the store (url, Sentinel or
// Cluster), else the embedded file in store.path.
func (s Store) UsesRedis() bool {
	return s.Redis.URL != "" || s.Redis.Sentinel.Master != "" || len(s.Redis.ClusterAddrs) > 0
}

// UnsubscribeEnabled reports whether mail of this purpose gets unsubscribe
// links: the purpose's unsubscribe key when set, else true for marketing
// purposes only.
func (p Purpose) UnsubscribeEnabled() bool {
	if p.Unsubscribe != nil {
		return *p.Unsubscribe
	}
	return p.Category == CategoryMarketing
}

// TrustedPrefixes returns smtp.trusted_networks as prefixes, a bare address
// as its one-address prefix. An empty result trusts nothing. Entries that
// do not parse are skipped; Load has refused them already.
func (s SMTP) TrustedPrefixes() []netip.Prefix {
	return prefixes(s.TrustedNetworks)
}

// TrustedProxyPrefixes returns http.trusted_proxies as prefixes, like
// TrustedPrefixes.
func (h HTTP) TrustedProxyPrefixes() []netip.Prefix {
	return prefixes(h.TrustedProxies)
}

func prefixes(list []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	for _, n := range list {
		if p, err := parsePrefix(n); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Upstream URL schemes.
const (
	SchemeSMTP  = "smtp"
	SchemeSMTPS = "smtps"
	SchemeFile  = "file"
)

// Target reads upstream.url. For smtp and smtps, addr is host:port, the
// port defaulting to 25 and 465. For file, addr is the directory: a path
// relative to the working directory unless it starts with "/"
// ("file://./data/outbox" and "file://data/outbox" are the same place,
// "file:///var/outbox" is absolute).
func (u Upstream) Target() (scheme, addr string, err error) {
	p, err := url.Parse(u.URL)
	if err != nil {
		return "", "", fmt.Errorf("not a URL: %q", u.URL)
	}
	switch p.Scheme {
	case SchemeFile:
		if p.User != nil || p.RawQuery != "" || p.Fragment != "" {
			return "", "", fmt.Errorf("a file URL is file://DIR, got %q", u.URL)
		}
		dir := p.Opaque // "file:data/outbox"
		if dir == "" {
			dir = p.Host + p.Path
		}
		if dir == "" {
			return "", "", errors.New("a file URL needs a directory, e.g. file://./data/outbox")
		}
		return SchemeFile, dir, nil
	case SchemeSMTP, SchemeSMTPS:
		if p.User != nil {
			return "", "", errors.New("put credentials in upstream.username and upstream.password_file, not in the URL")
		}
		if p.Opaque != "" || (p.Path != "" && p.Path != "/") || p.RawQuery != "" || p.Fragment != "" {
			return "", "", fmt.Errorf("want %s://host:port, got %q", p.Scheme, u.URL)
		}
		host, port := p.Hostname(), p.Port()
		if host == "" {
			return "", "", fmt.Errorf("want %s://host:port, got %q", p.Scheme, u.URL)
		}
		if port == "" {
			port = "25"
			if p.Scheme == SchemeSMTPS {
				port = "465"
			}
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", "", fmt.Errorf("bad port %q in %q", port, u.URL)
		}
		return p.Scheme, net.JoinHostPort(host, port), nil
	}
	return "", "", fmt.Errorf("the scheme must be smtp, smtps or file, got %q", u.URL)
}
