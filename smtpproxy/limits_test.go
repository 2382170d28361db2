package smtpproxy_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/internal/testtools"
	"optinproxy/smtpproxy"
)

// An idle flood of a few thousand connections, none of which says a word
// of SMTP: the proxy holds no more than its limits, in all and per client
// address, answers the rest with 421 4.7.0 and closes them at once, and
// lets clients in again as the held connections go away.
func TestConnectionLimits(t *testing.T) {
	testtools.RaiseFileLimit(t, 3500)
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.MaxConnections, o.MaxConnectionsPerIP = 200, 50
		o.FirstCommandTimeout, o.ReadTimeout = time.Hour, time.Hour
	})
	refused := func(reason string) float64 {
		return p.metric(t, "optinproxy_smtp_connections_refused_total", map[string]string{"reason": reason})
	}

	// One client over its own limit, while the total has room.
	one, n := openMany(t, p.addr, []byte{2}, 100)
	if len(one) != 50 || n != 50 {
		t.Fatalf("100 connections from one address: %d held, %d refused; want 50 and 50", len(one), n)
	}
	if got := refused("per_ip"); got != 50 {
		t.Errorf("refused per_ip = %v, want 50", got)
	}

	// Many clients, each under its own limit, over the total.
	many, n := openMany(t, p.addr, []byte{3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 2900)
	if len(many) != 150 || n != 2750 {
		t.Fatalf("2900 connections from ten addresses: %d held, %d refused; want 150 and 2750", len(many), n)
	}
	if g, ip := refused("global"), refused("per_ip"); g != 2750 || ip != 50 {
		t.Errorf("refused global = %v, per_ip = %v; want 2750 and 50", g, ip)
	}

	// A well-behaved client is told to come back later.
	c, err := smtp.Dial(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	if se := wantCode(t, c.Hello("client.test"), 421); se.EnhancedCode != (smtp.EnhancedCode{4, 7, 0}) {
		t.Errorf("refusal %v %q, want 4.7.0", se.EnhancedCode, se.Message)
	}
	c.Close()

	// The first client's connections go: its count is freed, and it may
	// hold its 50 again, no more.
	goAway(t, one)
	again, n := openMany(t, p.addr, []byte{2}, 51)
	if len(again) != 50 || n != 1 {
		t.Fatalf("after its connections closed, 51 from the first address: %d held, %d refused; want 50 and 1", len(again), n)
	}

	// Everyone goes: a client gets through and relays.
	goAway(t, append(again, many...))
	c = p.dial(t)
	if _, err := send(c, "crm@shop.example", []string{"jan@example.com"}, fresh()); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
	if got := len(p.up.deliveries()); got != 1 {
		t.Errorf("upstream got %d messages, want 1", got)
	}
}

// A share of the total is kept for trusted networks: a flood from
// elsewhere stops short of the limit, the trusted client still gets in,
// and the limit itself holds for it too.
func TestTrustedHeadroom(t *testing.T) {
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.MaxConnections, o.MaxConnectionsPerIP = 20, 20
		o.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	})
	if held, n := openMany(t, p.addr, []byte{3}, 20); len(held) != 18 || n != 2 {
		t.Fatalf("20 from an untrusted address: %d held, %d refused; want 18 and 2", len(held), n)
	}
	if held, n := openMany(t, p.addr, []byte{2}, 3); len(held) != 2 || n != 1 {
		t.Fatalf("3 from the trusted address: %d held, %d refused; want 2 and 1", len(held), n)
	}
}

// The plain and the implicit-TLS listener share one count. Over the
// limit, an implicit-TLS connection is closed before its handshake.
func TestConnectionLimitsShareListeners(t *testing.T) {
	cfg, pool := testCert(t)
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.TLSConfig = cfg
		o.MaxConnections, o.MaxConnectionsPerIP = 2, 10
	})
	plain, _ := openMany(t, p.addr, []byte{1}, 1)
	tc, err := tls.Dial("tcp", p.tlsAddr, &tls.Config{RootCAs: pool, ServerName: "relay.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tr := &rawClient{t: t, conn: tc, tp: textproto.NewConn(tc)}
	if code, _, err := tr.read(); err != nil || code != 220 {
		t.Fatalf("implicit TLS under the limit: %d %v", code, err)
	}
	tr.must(250, "EHLO client.test")
	if held, n := openMany(t, p.addr, []byte{1}, 1); len(held) != 0 || n != 1 {
		t.Fatalf("plain with one plain and one TLS connection held: %d held, %d refused; want 0 and 1", len(held), n)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.tlsAddr,
		&tls.Config{RootCAs: pool, ServerName: "relay.test"})
	if err == nil {
		conn.Close()
		t.Fatal("implicit TLS over the limit: handshake succeeded, want the connection closed")
	}
	if got := p.metric(t, "optinproxy_smtp_connections_refused_total", map[string]string{"reason": "global"}); got != 2 {
		t.Errorf("refused global = %v, want 2", got)
	}

	// The TLS client leaves: a plain one gets in. The proxy counts a
	// connection out before it closes the socket, so the test waits for
	// the end of TCP, under TLS's close_notify.
	tr.must(221, "QUIT")
	tc.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, tc.NetConn()); err != nil {
		t.Fatal(err)
	}
	if held, n := openMany(t, p.addr, []byte{1}, 1); len(held) != 1 || n != 0 {
		t.Fatalf("plain after the TLS client left: %d held, %d refused; want 1 and 0", len(held), n)
	}
	goAway(t, plain)
}

// A client that connects and says nothing is dropped after the first
// command timeout, on both listeners; one that has said EHLO waits for
// the full read timeout between commands.
func TestFirstCommandTimeout(t *testing.T) {
	cfg, pool := testCert(t)
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.TLSConfig = cfg
		o.FirstCommandTimeout, o.ReadTimeout = time.Second, time.Hour
	})
	greeted := dialRaw(t, p.addr)
	greeted.must(250, "EHLO client.test")

	silent := dialRaw(t, p.addr)
	if code, msg, err := silent.read(); err != nil || code != 421 {
		t.Fatalf("silent client: %d %q %v, want 421 idle timeout", code, msg, err)
	}
	if !silent.closed() {
		t.Error("silent client not closed after its 421")
	}

	tc, err := tls.Dial("tcp", p.tlsAddr, &tls.Config{RootCAs: pool, ServerName: "relay.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	silentTLS := &rawClient{t: t, conn: tc, tp: textproto.NewConn(tc)}
	if code, _, err := silentTLS.read(); err != nil || code != 220 {
		t.Fatalf("implicit TLS greeting: %d %v", code, err)
	}
	if code, msg, err := silentTLS.read(); err != nil || code != 421 {
		t.Fatalf("silent TLS client: %d %q %v, want 421 idle timeout", code, msg, err)
	}

	noHandshake, err := net.Dial("tcp", p.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer noHandshake.Close()
	if !(&rawClient{t: t, conn: noHandshake}).closed() {
		t.Error("connection without a TLS handshake not closed after the first command timeout")
	}

	// The silent clients connected after the greeted one said EHLO and
	// were dropped: its own first-command deadline has passed too.
	greeted.must(250, "NOOP")
}

// openMany opens n connections to addr, in turn from the loopback
// addresses 127.0.0.x for x in srcs, and reads each one's opening. It
// returns the connections greeted with 220, still open, and the number
// refused with 421 4.7.0; a refused one must be closed after its reply.
func openMany(t *testing.T, addr string, srcs []byte, n int) (held []net.Conn, refused int) {
	t.Helper()
	for i := range n {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, srcs[i%len(srcs)])}
		c, err := (&net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}).Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d from %s: %v", i, src.IP, err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		switch {
		case strings.HasPrefix(line, "220 "):
			c.SetReadDeadline(time.Time{})
			held = append(held, c)
			t.Cleanup(func() { c.Close() })
			continue
		case strings.HasPrefix(line, "421 4.7.0 "):
			refused++
			if _, err := r.ReadByte(); err != io.EOF {
				t.Errorf("connection %d from %s: after the 421, %v; want the connection closed", i, src.IP, err)
			}
		default:
			t.Fatalf("connection %d from %s: opening %q, %v", i, src.IP, line, err)
		}
		c.Close()
	}
	return held, refused
}

// goAway closes conns the way that lets the test know the proxy has
// counted them out: it closes the writing side, and the proxy, reading
// the end, closes its side, which the test then reads.
func goAway(t *testing.T, conns []net.Conn) {
	t.Helper()
	for _, c := range conns {
		c.(*net.TCPConn).CloseWrite()
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("waiting for the proxy to close: %v", err)
		}
		c.Close()
	}
}
