package smtpproxy_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"optinproxy/smtpproxy"
)

// startTLSProxy starts a proxy with a certificate that trusts no network
// and has the user crm; pool trusts the certificate.
func startTLSProxy(t *testing.T) (p *proxy, pool *x509.CertPool) {
	t.Helper()
	cfg, pool := testCert(t)
	p = startAuthProxy(t, func(o *smtpproxy.Options) { o.TLSConfig = cfg })
	return p, pool
}

// STARTTLS, then AUTH, then a relayed message whose Received: header
// records TLS and authentication (RFC 3848 ESMTPSA), for both names the
// certificate holds.
func TestStartTLSAuthRelays(t *testing.T) {
	p, pool := startTLSProxy(t)
	for _, name := range []string{"relay.test", "127.0.0.1"} {
		c, err := smtp.DialStartTLS(p.addr, &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Fatalf("STARTTLS as %s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		if _, ok := c.TLSConnectionState(); !ok {
			t.Fatal("client not on TLS after STARTTLS")
		}
		if err := c.Auth(sasl.NewPlainClient("", "crm", "s3cret")); err != nil {
			t.Fatal(err)
		}
		if _, err := send(c, "crm@shop.example", []string{"jan@example.com"}, fresh()); err != nil {
			t.Fatal(err)
		}
	}
	got := p.up.deliveries()
	if len(got) != 2 {
		t.Fatalf("upstream got %d messages, want 2", len(got))
	}
	for _, d := range got {
		if with := receivedWith(d.data); with != "ESMTPSA" {
			t.Errorf("Received: says with %q, want ESMTPSA:\n%s", with, d.data)
		}
	}
}

// Implicit TLS (as on port 465) relays after AUTH, and the proxy does not
// offer STARTTLS on a connection that is already encrypted.
func TestImplicitTLSRelays(t *testing.T) {
	p, pool := startTLSProxy(t)
	if p.tlsAddr == "" {
		t.Fatal("no implicit-TLS listener")
	}
	c, err := smtp.DialTLS(p.tlsAddr, &tls.Config{RootCAs: pool, ServerName: "relay.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered on an implicit-TLS connection")
	}
	if err := c.Auth(sasl.NewLoginClient("crm", "s3cret")); err != nil {
		t.Fatal(err)
	}
	if _, err := send(c, "crm@shop.example", []string{"jan@example.com"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	got := p.up.deliveries()
	if len(got) != 1 {
		t.Fatalf("upstream got %d messages, want 1", len(got))
	}
	if with := receivedWith(got[0].data); with != "ESMTPSA" {
		t.Errorf("Received: says with %q, want ESMTPSA", with)
	}
}

// TLS alone is no licence to relay: an encrypted but unauthenticated
// client from an untrusted network still gets 530.
func TestTLSWithoutAuthIsRefused(t *testing.T) {
	p, pool := startTLSProxy(t)
	c, err := smtp.DialStartTLS(p.addr, &tls.Config{RootCAs: pool, ServerName: "relay.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = send(c, "crm@shop.example", []string{"jan@example.com"}, plainMsg)
	wantCode(t, err, 530)
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages", n)
	}
}

// Without a certificate the proxy does not offer STARTTLS and answers
// 502 TLS not supported to a client that asks anyway; the session goes
// on in plain text.
func TestStartTLSWithoutCertificate(t *testing.T) {
	p := startProxy(t, nil)
	r := dialRaw(t, p.addr)
	if ehlo := r.must(250, "EHLO client.test"); strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS offered without a certificate:\n%s", ehlo)
	}
	if msg := r.must(502, "STARTTLS"); !strings.Contains(msg, "TLS not supported") {
		t.Errorf("reply %q", msg)
	}
	r.must(250, "MAIL FROM:<crm@shop.example>")

	// A client library that insists on TLS gives up instead of sending.
	if c, err := smtp.DialStartTLS(p.addr, nil); err == nil {
		c.Close()
		t.Error("DialStartTLS succeeded against a proxy without a certificate")
	}
	// And implicit TLS needs a certificate.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := p.srv.ServeTLS(ln); err == nil {
		t.Error("ServeTLS without a certificate returned nil")
	}
}

// With a certificate, the proxy offers STARTTLS to a loopback client on
// the default trusted networks, which relays without AUTH (ESMTPS).
func TestStartTLSTrustedNetwork(t *testing.T) {
	cfg, pool := testCert(t)
	p := startProxy(t, func(o *smtpproxy.Options) { o.TLSConfig = cfg })
	c, err := smtp.DialStartTLS(p.addr, &tls.Config{RootCAs: pool, ServerName: "relay.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := send(c, "crm@shop.example", []string{"jan@example.com"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	got := p.up.deliveries()
	if len(got) != 1 {
		t.Fatalf("upstream got %d messages", len(got))
	}
	if with := receivedWith(got[0].data); with != "ESMTPS" {
		t.Errorf("Received: says with %q, want ESMTPS", with)
	}
}

// From anywhere but loopback, AUTH in plain text is neither offered nor
// accepted (538 5.7.11), so that a password never crosses the network
// unencrypted; after
// STARTTLS the same client authenticates and relays. The test listens on
// one of this machine's non-loopback addresses and dials it.
func TestPlainAuthRefusedOffLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	p, pool := startTLSProxy(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	go p.srv.Serve(ln)

	r := dialRaw(t, ln.Addr().String())
	if ehlo := r.must(250, "EHLO client.test"); strings.Contains(ehlo, "AUTH") {
		t.Errorf("AUTH offered in plain text off loopback:\n%s", ehlo)
	}
	msg := r.must(538, "AUTH PLAIN %s", plainAuth("crm", "s3cret"))
	if !strings.HasPrefix(msg, "5.7.11 ") {
		t.Errorf("reply %q, want 5.7.11", msg)
	}
	r.must(530, "MAIL FROM:<crm@shop.example>")
	r.startTLS(&tls.Config{RootCAs: pool, ServerName: "relay.test"})
	if ehlo := r.must(250, "EHLO client.test"); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Errorf("AUTH not offered after STARTTLS:\n%s", ehlo)
	}
	r.must(235, "AUTH PLAIN %s", plainAuth("crm", "s3cret"))
	r.must(250, "MAIL FROM:<crm@shop.example>")
	r.must(250, "RCPT TO:<jan@example.com>")
	r.must(354, "DATA")
	r.writeRaw(strings.ReplaceAll(plainMsg, "\r\n.", "\r\n..") + ".\r\n")
	if code, msg, err := r.read(); err != nil || code != 250 {
		t.Fatalf("DATA: %d %s %v", code, msg, err)
	}
	if n := len(p.up.deliveries()); n != 1 {
		t.Errorf("upstream got %d messages, want 1", n)
	}
	if v := p.replies(t, "538"); v != 1 {
		t.Errorf("538 replies counted %v, want 1", v)
	}
}

// Over TLS, too, three failed logins end the connection, after the third
// 535 was written.
func TestAuthThreeFailuresCloseOverTLS(t *testing.T) {
	p, pool := startTLSProxy(t)
	r := dialRaw(t, p.addr)
	r.must(250, "EHLO client.test")
	r.startTLS(&tls.Config{RootCAs: pool, ServerName: "relay.test"})
	r.must(250, "EHLO client.test")
	for i := 0; i < 3; i++ {
		// The initial response carries the name; the password follows.
		r.must(334, "AUTH LOGIN %s", b64("crm"))
		r.must(535, "%s", b64("wrong"))
	}
	if !r.closed() {
		t.Fatal("connection still open after three failed logins")
	}
}

// nonLoopbackIP returns an address of this machine that is not loopback,
// or skips the test.
func nonLoopbackIP(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		if ip := pfx.Addr(); ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			return ip
		}
	}
	t.Skip("no non-loopback IPv4 address to test from")
	return netip.Addr{}
}
