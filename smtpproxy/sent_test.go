package smtpproxy_test

import (
	"sync"
	"testing"

	"optinproxy/smtpproxy"
)

// TestSentCountsCopiesByFromDomain: the complaint rate's denominator is
// the copies relayed per From: domain (not the envelope's), counted only
// for what the upstream took.
func TestSentCountsCopiesByFromDomain(t *testing.T) {
	var mu sync.Mutex
	sent := map[string]int{}
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.Sent = func(domain string, n int) {
			mu.Lock()
			defer mu.Unlock()
			sent[domain] += n
		}
	})
	c := p.dial(t)
	msg := "From: \"Shop =?utf-8?q?N=C3=A9e?=\" <News@Mail.Shop.Example>\r\nSubject: hi\r\n\r\nbody\r\n"
	if _, err := send(c, "bounce@bounces.example", []string{"a@example.com", "b@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	// No readable From: the envelope's domain stands in.
	if _, err := send(c, "crm@Shop.Example", []string{"c@example.com"}, "Subject: no from\r\n\r\nbody\r\n"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sent["mail.shop.example"] != 2 || sent["shop.example"] != 1 || len(sent) != 2 {
		t.Errorf("sent = %v, want mail.shop.example: 2, shop.example: 1", sent)
	}
}
