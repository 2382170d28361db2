package smtpproxy_test

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
)

// The HELO name goes into Received: only when it is a valid domain or
// address literal; any other is written as "unknown", and a hostile one
// (control characters, a CR that would start a new header field) neither
// reaches the header nor breaks the session's mail.
func TestHeloNameInReceived(t *testing.T) {
	for _, tc := range []struct {
		helo, want string
	}{
		{"mail.shop.example", "mail.shop.example"},
		{"[192.0.2.7]", "[192.0.2.7]"},
		{"[IPv6:2001:db8::7]", "[IPv6:2001:db8::7]"},
		{"a\tb(c)[d];\x01\x7f", "unknown"},
		{"name\rBcc: victim@example.org", "unknown"},
		{"-bad-.example", "unknown"},
		{"under_score.example", "unknown"},
		{strings.Repeat("a", 64) + ".example", "unknown"},
	} {
		p := startProxy(t, nil)
		c := dialRaw(t, p.addr)
		c.must(250, "EHLO %s", tc.helo)
		c.must(250, "MAIL FROM:<crm@shop.example>")
		c.must(250, "RCPT TO:<jan@example.com>")
		c.must(354, "DATA")
		c.writeRaw(plainMsg + ".\r\n")
		if code, msg, err := c.read(); err != nil || code != 250 {
			t.Fatalf("EHLO %q: DATA reply %d %s %v", tc.helo, code, msg, err)
		}
		d := p.up.deliveries()
		if len(d) != 1 {
			t.Fatalf("EHLO %q: %d deliveries", tc.helo, len(d))
		}
		m, err := mail.ReadMessage(bytes.NewReader(d[0].data))
		if err != nil {
			t.Fatal(err)
		}
		rcv := m.Header.Get("Received")
		if f := strings.Fields(rcv); len(f) < 2 || f[0] != "from" || f[1] != tc.want {
			t.Errorf("EHLO %q: Received: %q, want from %s", tc.helo, rcv, tc.want)
		}
		if strings.ContainsAny(rcv, "\x00\x01\x7f\t\r") || m.Header.Get("Bcc") != "" {
			t.Errorf("EHLO %q: hostile bytes in the header: %q", tc.helo, rcv)
		}
	}
}
