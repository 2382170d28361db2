package smtpproxy

import (
	"net"
	"net/netip"
	"testing"
)

func TestClientOf(t *testing.T) {
	tests := []struct {
		addr, want string
	}{
		// IPv4: each address is a client of its own.
		{"192.0.2.1:25", "192.0.2.1/32"},
		{"192.0.2.2:25", "192.0.2.2/32"},
		// IPv4 mapped into IPv6 is still the IPv4 client.
		{"[::ffff:192.0.2.1]:25", "192.0.2.1/32"},
		// IPv6: a host rotating inside its /64 is one client.
		{"[2001:db8:1:2::1]:25", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:25", "2001:db8:1:2::/64"},
		// The next /64 is another client.
		{"[2001:db8:1:3::1]:25", "2001:db8:1:3::/64"},
		// A zone does not make another client.
		{"[fe80::1%eth0]:25", "fe80::/64"},
		{"[::1]:25", "::/64"},
	}
	for _, tt := range tests {
		got := clientOf(remoteIP(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tt.addr))))
		if got.String() != tt.want {
			t.Errorf("clientOf(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	// An address that is not IP (a Unix socket) counts as one client.
	if got := clientOf(remoteIP(&net.UnixAddr{Name: "/tmp/s", Net: "unix"})); got.IsValid() {
		t.Errorf("clientOf(unix socket) = %s, want the zero Prefix", got)
	}
}

// connLimits: per-client before global, the reserve for trusted
// networks, and release giving the room back.
func TestConnLimits(t *testing.T) {
	a, b := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32")
	l := newConnLimits(10, 3) // one of the ten is for trusted networks
	for i := range 3 {
		if r := l.admit(a, false); r != "" {
			t.Fatalf("a's connection %d refused: %s", i, r)
		}
	}
	if r := l.admit(a, true); r != refusedPerIP {
		t.Fatalf("a's fourth: %q, want per_ip, trusted or not", r)
	}
	for i := range 3 {
		c := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 32)
		for range 2 {
			if r := l.admit(c, false); r != "" {
				t.Fatalf("untrusted client %d refused: %s", i, r)
			}
		}
	}
	if r := l.admit(b, false); r != refusedGlobal {
		t.Fatalf("untrusted tenth: %q, want global (the last one is kept for trusted networks)", r)
	}
	if r := l.admit(b, true); r != "" {
		t.Fatalf("trusted tenth: %q, want admitted", r)
	}
	if r := l.admit(b, true); r != refusedGlobal {
		t.Fatalf("trusted eleventh: %q, want global", r)
	}
	l.release(a)
	if r := l.admit(a, true); r != "" {
		t.Fatalf("after a release, a: %q, want admitted", r)
	}
	for range 3 {
		l.release(a)
	}
	if _, ok := l.byClient[a]; ok || l.total != 7 {
		t.Errorf("after a's connections all went: byClient[a] present %v, total %d; want absent and 7", ok, l.total)
	}
}

// FuzzClientOf: whatever the address, its client is a prefix of the right
// length that holds it, and the other addresses of that prefix are the
// same client.
func FuzzClientOf(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::ffff:10.0.0.1", "2001:db8::1", "fe80::1%eth0", "::1", "::"} {
		a := netip.MustParseAddr(s)
		b, _ := a.MarshalBinary()
		f.Add(b, uint64(0))
	}
	f.Fuzz(func(t *testing.T, raw []byte, low uint64) {
		var ip netip.Addr
		if ip.UnmarshalBinary(raw) != nil || !ip.IsValid() {
			return
		}
		p := clientOf(remoteIP(net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 25))))
		plain := ip.Unmap().WithZone("")
		wantBits := 64
		if plain.Is4() {
			wantBits = 32
		}
		if p.Bits() != wantBits || !p.Contains(plain) || p != p.Masked() {
			t.Fatalf("clientOf(%s) = %s", ip, p)
		}
		if plain.Is6() {
			// Another interface identifier in the same /64.
			b := plain.As16()
			for i := range 8 {
				b[8+i] = byte(low >> (8 * i))
			}
			if q := clientOf(netip.AddrFrom16(b)); q != p {
				t.Fatalf("%s and %s: clients %s and %s, want one", plain, netip.AddrFrom16(b), p, q)
			}
		}
	})
}
