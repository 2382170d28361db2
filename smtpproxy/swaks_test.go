package smtpproxy_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"optinproxy/internal/testtools"
)

// swaks runs the swaks SMTP test client against addr with args and
// returns its exit code and output.
func swaks(t *testing.T, addr string, args ...string) (int, string) {
	t.Helper()
	return testtools.Swaks(t, append([]string{"--server", addr, "--helo", "swaks.test", "--timeout", "10s",
		"--from", "crm@shop.example", "--to", "jan@example.com"}, args...)...)
}

// needSwaksTLS installs swaks's TLS module when it lacks it (Net::SSLeay,
// the Debian package libnet-ssleay-perl, which swaks only recommends).
func needSwaksTLS(t *testing.T) {
	t.Helper()
	bin := testtools.Need(t, "swaks", "swaks")
	testtools.Install(t, func() bool {
		out, _ := exec.Command(bin, "--support").CombinedOutput()
		return strings.Contains(string(out), "=== TLS supported")
	}, "libnet-ssleay-perl")
}

// wantSwaksDelivery fails unless the upstream got exactly one message
// carrying body, and returns it.
func wantSwaksDelivery(t *testing.T, p *proxy, body string) delivery {
	t.Helper()
	got := p.up.deliveries()
	if len(got) != 1 {
		t.Fatalf("upstream got %d messages, want 1", len(got))
	}
	if !bytes.Contains(got[0].data, []byte(body)) {
		t.Errorf("upstream message lacks the swaks body %q:\n%s", body, got[0].data)
	}
	if got[0].from != "crm@shop.example" || strings.Join(got[0].to, ",") != "jan@example.com" {
		t.Errorf("envelope %q -> %q", got[0].from, got[0].to)
	}
	return got[0]
}

// A stock SMTP client on loopback, trusted by default, relays without
// AUTH, and its message arrives with its body.
func TestSwaksPlainLoopback(t *testing.T) {
	p := startProxy(t, nil)
	code, out := swaks(t, p.addr, "--body", "swaks body plain 4711")
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s", code, out)
	}
	wantSwaksDelivery(t, p, "swaks body plain 4711")
}

// swaks with STARTTLS and AUTH LOGIN against a proxy that trusts no
// network: relayed, and recorded as ESMTPSA.
func TestSwaksStartTLSAuthLogin(t *testing.T) {
	needSwaksTLS(t)
	p, _ := startTLSProxy(t)
	code, out := swaks(t, p.addr, "--tls", "--auth", "LOGIN", "--auth-user", "crm", "--auth-password", "s3cret",
		"--body", "swaks body tls 4712")
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s", code, out)
	}
	d := wantSwaksDelivery(t, p, "swaks body tls 4712")
	if with := receivedWith(d.data); with != "ESMTPSA" {
		t.Errorf("Received: says with %q, want ESMTPSA", with)
	}
}

// swaks with implicit TLS (--tls-on-connect) and AUTH PLAIN.
func TestSwaksImplicitTLSAuthPlain(t *testing.T) {
	needSwaksTLS(t)
	p, _ := startTLSProxy(t)
	code, out := swaks(t, p.tlsAddr, "--tls-on-connect", "--auth", "PLAIN", "--auth-user", "crm", "--auth-password", "s3cret",
		"--body", "swaks body tlsc 4713")
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s", code, out)
	}
	wantSwaksDelivery(t, p, "swaks body tlsc 4713")
}

// A wrong password: swaks fails, its transcript shows the 535, and
// nothing is relayed.
func TestSwaksWrongPassword(t *testing.T) {
	needSwaksTLS(t)
	p, _ := startTLSProxy(t)
	code, out := swaks(t, p.addr, "--tls", "--auth", "LOGIN", "--auth-user", "crm", "--auth-password", "wrong")
	if code == 0 {
		t.Fatalf("swaks succeeded with a wrong password:\n%s", out)
	}
	if !strings.Contains(out, "535 5.7.8") {
		t.Errorf("swaks transcript does not show 535 5.7.8:\n%s", out)
	}
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages", n)
	}
}

// Without AUTH against a proxy that trusts nobody, swaks is refused at
// MAIL with 530: not an open relay, whatever the client.
func TestSwaksNoAuthRefused(t *testing.T) {
	p := startAuthProxy(t, nil)
	code, out := swaks(t, p.addr)
	if code == 0 {
		t.Fatalf("swaks relayed without AUTH:\n%s", out)
	}
	if !strings.Contains(out, "530 5.7.0") {
		t.Errorf("swaks transcript does not show 530 5.7.0:\n%s", out)
	}
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages", n)
	}
}
