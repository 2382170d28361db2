package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Small checks shared by the validation of several sections.

// checkHostPort accepts "host:port" and ":port" with a numeric port.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("bad host %q", host)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("bad port %q in %q", port, s)
	}
	return nil
}

// parsePrefix reads a CIDR, or a bare IP as the one-address prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, fmt.Errorf("want a network such as 10.0.0.0/8 or an address, got %q", s)
		}
		p = netip.PrefixFrom(a.WithZone(""), a.BitLen())
	}
	// Peers are compared as IPv4 when they come IPv4-mapped
	// (::ffff:10.0.0.1), so a mapped network is kept as the IPv4 one it
	// names; kept mapped, it would match no peer at all.
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// isDomain reports whether s is a DNS name of letters, digits and hyphens
// (IDNs in their xn-- form) with at least two labels.
func isDomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range []byte(l) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
			if !ok {
				return false
			}
		}
	}
	return true
}

// checkHTTPURL accepts an absolute http or https URL with a host.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an absolute http:// or https:// URL, got %q", s)
	}
	return nil
}

func oneOf(v string, allowed []string) bool { return slices.Contains(allowed, v) }

// mustBeOneOf words the problem for a value outside an enumeration.
func mustBeOneOf(v string, allowed []string) string {
	if v == "" {
		return "must be set, to one of " + strings.Join(allowed, ", ")
	}
	return fmt.Sprintf("must be one of %s, not %q", strings.Join(allowed, ", "), v)
}
