package smtpproxy

import (
	"net/netip"
	"testing"
	"time"
)

// TestAuthLimiterKeys: an IPv6 client is counted by its /64, the block a
// single host or customer usually holds, so that rotating through it
// does not escape the lockout; an IPv4 client by its address; an
// IPv4-mapped IPv6 address as the IPv4 address it is.
func TestAuthLimiterKeys(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	ip := netip.MustParseAddr
	for _, c := range []struct {
		name     string
		failFrom []string // one failure from each
		locked   []string
		free     []string
	}{
		{
			name:     "IPv6 rotating within its /64",
			failFrom: []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
			locked:   []string{"2001:db8:1:2::1", "2001:db8:1:2:abcd::9", "2001:db8:1:2::3"},
			free:     []string{"2001:db8:1:3::1", "2001:db8:1::1", "192.0.2.1"},
		},
		{
			name:     "IPv6 with a zone is its /64",
			failFrom: []string{"fe80::1%eth0", "fe80::2%eth1", "fe80::3"},
			locked:   []string{"fe80::4", "fe80::5%eth2"},
			free:     []string{"fe80:0:0:1::1"},
		},
		{
			name:     "IPv4 by address",
			failFrom: []string{"192.0.2.1", "192.0.2.1", "192.0.2.1"},
			locked:   []string{"192.0.2.1", "::ffff:192.0.2.1"},
			free:     []string{"192.0.2.2", "192.0.2.0", "::ffff:192.0.2.2"},
		},
		{
			name:     "IPv4-mapped counts as IPv4",
			failFrom: []string{"::ffff:198.51.100.7", "198.51.100.7", "::ffff:198.51.100.7"},
			locked:   []string{"198.51.100.7"},
			free:     []string{"198.51.100.8", "::ffff:198.51.100.8"},
		},
		{
			name:     "IPv4 neighbours do not add up",
			failFrom: []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"},
			free:     []string{"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newAuthLimiter(3, time.Minute)
			for _, a := range c.failFrom {
				l.failed(ip(a), now)
			}
			for _, a := range c.locked {
				if !l.locked(ip(a), now) {
					t.Errorf("%s is not locked out", a)
				}
			}
			for _, a := range c.free {
				if l.locked(ip(a), now) {
					t.Errorf("%s is locked out", a)
				}
			}
		})
	}
}

// A success from any address of the block forgets the block's failures,
// and the lockout of a block ends a window after its last failure.
func TestAuthLimiterBlockForgets(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	l := newAuthLimiter(2, time.Minute)
	l.failed(netip.MustParseAddr("2001:db8::1"), now)
	l.succeeded(netip.MustParseAddr("2001:db8::2"))
	l.failed(netip.MustParseAddr("2001:db8::3"), now)
	if l.locked(netip.MustParseAddr("2001:db8::4"), now) {
		t.Error("failures before a success from the block still count")
	}
	l.failed(netip.MustParseAddr("2001:db8::5"), now)
	if !l.locked(netip.MustParseAddr("2001:db8::6"), now) {
		t.Error("two failures from the block did not lock it")
	}
	if l.locked(netip.MustParseAddr("2001:db8::6"), now.Add(time.Minute)) {
		t.Error("the block is still locked a window after its last failure")
	}
}
