package main

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// behindProxies makes a request that came through one of the trusted
// reverse proxies carry the client the proxies name in X-Forwarded-For as
// its RemoteAddr, so that the evidence of a page and the portal's
// per-client limit see the recipient, not the proxy. The header is read
// from the right: each proxy appends the peer it saw, so the first
// address that is not a trusted proxy is the client; anything left of it
// was written by the client and could be forged. From any other peer the
// header is ignored.
func behindProxies(next http.Handler, trusted []netip.Prefix) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap().WithZone("") // a prefix holds no zone, and contains no address with one
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !isTrusted(peer.Addr()) {
			next.ServeHTTP(w, r)
			return
		}
		if client, ok := forwardedClient(r.Header.Values("X-Forwarded-For"), isTrusted); ok {
			r = r.WithContext(r.Context()) // a copy: the caller's request stays as it came
			r.RemoteAddr = net.JoinHostPort(client.String(), "0")
		}
		next.ServeHTTP(w, r)
	})
}

// hopAddr is the address of one X-Forwarded-For entry: an IP, or an IP
// with a port ("203.0.113.9:52100", "[2001:db8::1]:443"), as some load
// balancers (Azure's, IIS's ARR) write them.
func hopAddr(hop string) (netip.Addr, error) {
	a, err := netip.ParseAddr(hop)
	if err == nil {
		return a, nil
	}
	ap, perr := netip.ParseAddrPort(hop)
	if perr != nil {
		return netip.Addr{}, err
	}
	return ap.Addr(), nil
}

// forwardedClient walks the hops of X-Forwarded-For from the right (the
// last header's last hop first) to the first that is not trusted, and
// returns the last address it read. It cuts the header in place rather
// than splitting it: a header of a megabyte of short hops would otherwise
// cost a slice many times its size on every request.
func forwardedClient(values []string, isTrusted func(netip.Addr) bool) (netip.Addr, bool) {
	client := netip.Addr{}
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for {
			cut := strings.LastIndexByte(rest, ',')
			a, err := hopAddr(strings.TrimSpace(rest[cut+1:]))
			if err != nil {
				return client, client.IsValid() // a hop that is no address: believe nothing further left
			}
			client = a.Unmap().WithZone("")
			if !isTrusted(client) {
				return client, true
			}
			if cut < 0 {
				break
			}
			rest = rest[:cut]
		}
	}
	return client, client.IsValid()
}
