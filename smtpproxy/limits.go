package smtpproxy

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// refuseWriteTimeout bounds writing the refusal. It fits in the send
// buffer of a new socket, so the write does not wait in practice; the
// deadline keeps a client that never reads from holding the accept loop.
const refuseWriteTimeout = time.Second

// Why a connection was refused, as counted in the metric.
const (
	refusedGlobal = "global"
	refusedPerIP  = "per_ip"
)

// connLimits counts the open connections of all listeners, in all and per
// client. Safe for concurrent use.
type connLimits struct {
	max, perClient int
	// reserved of max are for trusted networks only, so that a flood from
	// elsewhere does not lock out the mailer on a trusted network. A flood
	// from a trusted network still meets max and the per-client limit.
	reserved int

	mu       sync.Mutex
	total    int
	byClient map[netip.Prefix]int
}

func newConnLimits(max, perClient int) *connLimits {
	return &connLimits{max: max, perClient: perClient, reserved: max / 10, byClient: make(map[netip.Prefix]int)}
}

// admit counts a new connection from client in and returns "", or returns
// why it is refused and counts nothing. A connection admitted must be
// released once.
func (l *connLimits) admit(client netip.Prefix, trusted bool) string {
	limit := l.max
	if !trusted {
		limit -= l.reserved
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.byClient[client] >= l.perClient:
		return refusedPerIP
	case l.total >= limit:
		return refusedGlobal
	}
	l.total++
	l.byClient[client]++
	return ""
}

// release counts out a connection that admit let in.
func (l *connLimits) release(client netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byClient[client] <= 1 {
		delete(l.byClient, client) // the map holds only clients connected now
	} else {
		l.byClient[client]--
	}
}

// remoteIP is the client's address, IPv4 unmapped; the zero Addr when
// the listener gives no IP address.
func remoteIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// clientOf is what MaxConnectionsPerIP counts by: an IPv4 address, or the
// /64 of an IPv6 address, because one host commonly holds a whole /64 and
// can take a new address in it for every connection. Connections without
// an IP address share the zero Prefix.
func clientOf(ip netip.Addr) netip.Prefix {
	bits := 64
	if ip.Is4() {
		bits = 32
	}
	p, err := ip.WithZone("").Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// refuse answers a connection over the limits and closes it, without a
// session. Behind implicit TLS, a reply would need a handshake first,
// which is the work the limit is there to spare; the client sees the
// connection close instead.
func refuse(c net.Conn, implicitTLS bool) {
	if !implicitTLS {
		c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", errTooManyConnections.Code, errTooManyConnections.EnhancedCode[0],
			errTooManyConnections.EnhancedCode[1], errTooManyConnections.EnhancedCode[2], errTooManyConnections.Message)
	}
	c.Close()
}
