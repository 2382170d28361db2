package smtpproxy_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"optinproxy/smtpproxy"
)

// tokenBook stands in for the unsubscribe package: it knows the tokens
// it issued and records what it was asked to apply.
type tokenBook struct {
	mu      sync.Mutex
	issued  map[string]bool
	applied []string
}

func (b *tokenBook) Check(token string) error {
	if !b.issued[token] {
		return errors.New("not issued")
	}
	return nil
}

func (b *tokenBook) Apply(_ context.Context, token, channel string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applied = append(b.applied, token+"/"+channel)
	return nil
}

// Mail to unsubscribe+TOKEN@<mailto domain> is accepted from a client
// that may not relay, without AUTH, and applied; that client can name no
// other recipient, and nothing reaches the upstream.
func TestMailtoUnsubscribe(t *testing.T) {
	book := &tokenBook{issued: map[string]bool{"Tok-EN_1": true}}
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.TrustedNetworks = []netip.Prefix{} // loopback may not relay
		o.MailtoDomain = "unsub.shop.example"
		o.Unsubscriber = book
	})
	c := dialRaw(t, p.addr)
	c.must(250, "EHLO mua.example")
	c.must(250, "MAIL FROM:<jan@example.com>")
	if msg := c.must(530, "RCPT TO:<piet@example.com>"); !strings.HasPrefix(msg, "5.7.0") {
		t.Errorf("another recipient: %s", msg)
	}
	c.must(550, "RCPT TO:<unsubscribe+forged@unsub.shop.example>")
	c.must(530, "RCPT TO:<unsubscribe+Tok-EN_1@other.example>")
	c.must(250, "RCPT TO:<unsubscribe+Tok-EN_1@UNSUB.shop.example>")
	c.must(354, "DATA")
	c.writeRaw("Subject: unsubscribe\r\n\r\n.\r\n")
	if code, msg, err := c.read(); err != nil || code != 250 || !strings.Contains(msg, "Unsubscribed") {
		t.Fatalf("DATA: %d %s %v", code, msg, err)
	}
	if len(book.applied) != 1 || book.applied[0] != "Tok-EN_1/mailto" {
		t.Errorf("applied %v", book.applied)
	}
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("the upstream got %d messages", n)
	}

	// Such a client cannot send much either.
	c.must(250, "MAIL FROM:<jan@example.com>")
	c.must(250, "RCPT TO:<unsubscribe+Tok-EN_1@unsub.shop.example>")
	c.must(354, "DATA")
	c.writeRaw("Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 1100) + ".\r\n")
	if code, _, err := c.read(); err != nil || code != 552 {
		t.Fatalf("a large message: %d %v", code, err)
	}

	// Without a mailto domain, such a client gets nowhere.
	q := startProxy(t, func(o *smtpproxy.Options) { o.TrustedNetworks = []netip.Prefix{} })
	d := dialRaw(t, q.addr)
	d.must(250, "EHLO mua.example")
	d.must(530, "MAIL FROM:<jan@example.com>")
}
