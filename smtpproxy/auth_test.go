package smtpproxy_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"optinproxy/smtpproxy"
)

// startAuthProxy starts a proxy that trusts no network, with one user.
func startAuthProxy(t *testing.T, edit func(o *smtpproxy.Options)) *proxy {
	t.Helper()
	return startProxy(t, func(o *smtpproxy.Options) {
		o.TrustedNetworks = []netip.Prefix{}
		o.Users = []smtpproxy.User{{Name: "crm", PasswordHash: hash(t, "s3cret")}}
		if edit != nil {
			edit(o)
		}
	})
}

func (p *proxy) replies(t *testing.T, code string) float64 {
	t.Helper()
	return p.metric(t, "optinproxy_smtp_replies_total", map[string]string{"code": code})
}

// Never an open relay: with no trusted network, MAIL before AUTH is
// refused with 530 5.7.0, even from loopback, and nothing goes upstream.
func TestAuthRequiredWhenNobodyIsTrusted(t *testing.T) {
	p := startAuthProxy(t, nil)
	_, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, plainMsg)
	se := wantCode(t, err, 530)
	if se.EnhancedCode != [3]int{5, 7, 0} {
		t.Errorf("enhanced code %v, want 5.7.0", se.EnhancedCode)
	}
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages from an unauthenticated client", n)
	}
	if v := p.replies(t, "530"); v != 1 {
		t.Errorf("530 replies counted %v, want 1", v)
	}
}

// Wrong passwords and unknown users both get 535 5.7.8, and the client
// stays unauthenticated: its MAIL is still refused.
func TestAuthFailures(t *testing.T) {
	p := startAuthProxy(t, nil)
	for _, tc := range []struct {
		name string
		auth sasl.Client
	}{
		{"plain wrong password", sasl.NewPlainClient("", "crm", "wrong")},
		{"plain unknown user", sasl.NewPlainClient("", "nobody", "s3cret")},
		{"login wrong password", sasl.NewLoginClient("crm", "S3CRET")},
		// An authorization identity other than the user is not allowed.
		{"plain other identity", sasl.NewPlainClient("admin", "crm", "s3cret")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := p.dial(t)
			se := wantCode(t, c.Auth(tc.auth), 535)
			if se.EnhancedCode != [3]int{5, 7, 8} {
				t.Errorf("enhanced code %v, want 5.7.8", se.EnhancedCode)
			}
			_, err := send(c, "crm@shop.example", []string{"jan@example.com"}, plainMsg)
			wantCode(t, err, 530)
		})
	}
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages after failed logins", n)
	}
	if v := p.replies(t, "535"); v != 4 {
		t.Errorf("535 replies counted %v, want 4", v)
	}
}

// The right password, by PLAIN or by LOGIN, lets the user relay; the
// Received: header records an authenticated session (RFC 3848 ESMTPA).
func TestAuthSuccessRelays(t *testing.T) {
	p := startAuthProxy(t, nil)
	for _, auth := range []sasl.Client{
		sasl.NewPlainClient("", "crm", "s3cret"),
		sasl.NewPlainClient("crm", "crm", "s3cret"), // identity = user is fine
		sasl.NewLoginClient("crm", "s3cret"),
	} {
		c := p.dial(t)
		if err := c.Auth(auth); err != nil {
			t.Fatalf("auth: %v", err)
		}
		if _, err := send(c, "crm@shop.example", []string{"jan@example.com"}, fresh()); err != nil {
			t.Fatalf("send after auth: %v", err)
		}
	}
	got := p.up.deliveries()
	if len(got) != 3 {
		t.Fatalf("upstream got %d messages, want 3", len(got))
	}
	for _, d := range got {
		if with := receivedWith(d.data); with != "ESMTPA" {
			t.Errorf("Received: says with %q, want ESMTPA:\n%s", with, d.data)
		}
	}
	if v := p.replies(t, "530"); v != 0 {
		t.Errorf("530 replies counted %v, want 0", v)
	}
}

// AUTH LOGIN without an initial response: the server asks for the user
// name and then the password, each in a 334 challenge.
func TestAuthLoginStepByStep(t *testing.T) {
	p := startAuthProxy(t, nil)
	r := dialRaw(t, p.addr)
	r.must(250, "EHLO client.test")
	if msg := r.must(334, "AUTH LOGIN"); msg != b64("Username:") {
		t.Errorf("first challenge %q, want Username:", msg)
	}
	if msg := r.must(334, "%s", b64("crm")); msg != b64("Password:") {
		t.Errorf("second challenge %q, want Password:", msg)
	}
	r.must(235, "%s", b64("s3cret"))
	r.must(250, "MAIL FROM:<crm@shop.example>")
}

// A client that keeps guessing is cut off after three failures; it still
// gets the third 535 before the connection closes.
func TestAuthThreeFailuresClose(t *testing.T) {
	// The lockout across connections is tested on its own.
	p := startAuthProxy(t, func(o *smtpproxy.Options) { o.AuthFailLimit = 100 })
	for i := 0; i < 10; i++ { // the close must not race the reply
		r := dialRaw(t, p.addr)
		r.must(250, "EHLO client.test")
		r.must(535, "AUTH PLAIN %s", plainAuth("crm", "guess1"))
		r.must(535, "AUTH PLAIN %s", plainAuth("crm", "guess2"))
		r.must(535, "AUTH PLAIN %s", plainAuth("crm", "guess3"))
		if !r.closed() {
			t.Fatalf("connection %d still open after three failed logins", i)
		}
	}
	if v := p.replies(t, "535"); v != 30 {
		t.Errorf("535 replies counted %v, want 30", v)
	}
}

// Two failures and then the right password: the client is not cut off
// and may relay.
func TestAuthTwoFailuresThenSuccess(t *testing.T) {
	p := startAuthProxy(t, nil)
	r := dialRaw(t, p.addr)
	r.must(250, "EHLO client.test")
	r.must(535, "AUTH PLAIN %s", plainAuth("crm", "guess1"))
	r.must(535, "AUTH PLAIN %s", plainAuth("crm", "guess2"))
	r.must(235, "AUTH PLAIN %s", plainAuth("crm", "s3cret"))
	r.must(250, "MAIL FROM:<crm@shop.example>")
}

// from_domains limits the envelope sender of an authenticated user:
// another domain gets 553, the allowed one (in any case) is relayed.
func TestAuthFromDomains(t *testing.T) {
	p := startAuthProxy(t, func(o *smtpproxy.Options) { o.Users[0].FromDomains = []string{"shop.example"} })
	c := p.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", "crm", "s3cret")); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"crm@other.example", "crm@sub.shop.example", "crm@shop.example.evil", ""} {
		_, err := send(c, from, []string{"jan@example.com"}, fresh())
		wantCode(t, err, 553)
		c.Reset()
	}
	for _, from := range []string{"crm@shop.example", "News@SHOP.Example"} {
		if _, err := send(c, from, []string{"jan@example.com"}, fresh()); err != nil {
			t.Fatalf("MAIL FROM:<%s>: %v", from, err)
		}
	}
	if n := len(p.up.deliveries()); n != 2 {
		t.Errorf("upstream got %d messages, want 2", n)
	}
	if v := p.replies(t, "553"); v != 4 {
		t.Errorf("553 replies counted %v, want 4", v)
	}
}

// The default trusted networks (nil: loopback) let a local client relay
// without AUTH; the Received: header says plain ESMTP.
func TestLoopbackTrustedByDefault(t *testing.T) {
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.Users = []smtpproxy.User{{Name: "crm", PasswordHash: hash(t, "s3cret")}}
	})
	if _, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	got := p.up.deliveries()
	if len(got) != 1 {
		t.Fatalf("upstream got %d messages, want 1", len(got))
	}
	if with := receivedWith(got[0].data); with != "ESMTP" {
		t.Errorf("Received: says with %q, want ESMTP:\n%s", with, got[0].data)
	}
	if v := p.replies(t, "530"); v != 0 {
		t.Errorf("530 replies counted %v", v)
	}
}

// A trusted network that does not hold the client does not trust it.
func TestTrustedNetworkElsewhereIsNotTrusted(t *testing.T) {
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	_, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, plainMsg)
	wantCode(t, err, 530)
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages", n)
	}
}

// Guessing over many connections: after AuthFailLimit failures from one
// address, AUTH from it is refused with 454 4.7.0, even with the right
// password, until AuthLockout has passed since the last failure.
func TestAuthLockoutAcrossConnections(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := startAuthProxy(t, func(o *smtpproxy.Options) {
		o.AuthFailLimit, o.AuthLockout, o.Now = 3, time.Minute, clock
	})
	for range 3 {
		wantCode(t, p.dial(t).Auth(sasl.NewPlainClient("", "crm", "guess")), 535)
	}
	c := p.dial(t)
	se := wantCode(t, c.Auth(sasl.NewPlainClient("", "crm", "s3cret")), 454)
	if se.EnhancedCode != [3]int{4, 7, 0} {
		t.Errorf("enhanced code %v", se.EnhancedCode)
	}
	if err := c.Noop(); err == nil {
		t.Error("the locked-out connection stays open")
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	c = p.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", "crm", "s3cret")); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// A success forgets earlier failures: two more failures do not lock.
	for range 2 {
		wantCode(t, p.dial(t).Auth(sasl.NewPlainClient("", "crm", "guess")), 535)
	}
	if err := p.dial(t).Auth(sasl.NewPlainClient("", "crm", "s3cret")); err != nil {
		t.Errorf("two failures after a success locked the address: %v", err)
	}
}
