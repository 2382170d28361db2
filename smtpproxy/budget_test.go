package smtpproxy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/smtpproxy"
)

// The message bytes held at once are bounded: while one large message is
// being received, another that would pass the budget is refused with
// 452 4.3.1, at MAIL when its SIZE says so and at the end of DATA
// otherwise; once the first is done, the budget is free again.
func TestInflightBudget(t *testing.T) {
	const limit = 1 << 20
	p := startProxy(t, func(o *smtpproxy.Options) { o.MaxInflightBytes = limit })
	inflight := func() float64 { return p.metric(t, "optinproxy_smtp_inflight_bytes", nil) }

	// A holds 700 KiB and has not finished its message.
	a := dialRaw(t, p.addr)
	a.must(250, "EHLO a.test")
	a.must(250, "MAIL FROM:<crm@shop.example>")
	a.must(250, "RCPT TO:<jan@example.com>")
	a.must(354, "DATA")
	line := strings.Repeat("x", 78) + "\r\n"
	a.writeRaw("Subject: big\r\nMessage-ID: <big@shop.example>\r\n\r\n" + strings.Repeat(line, 700<<10/len(line)))
	waitFor(t, "A's bytes held", func() bool { return inflight() >= 700<<10 })

	// B announces a size that does not fit: refused at MAIL.
	b := p.dial(t)
	se := wantCode(t, b.Mail("crm@shop.example", &smtp.MailOptions{Size: 600 << 10}), 452)
	if se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Errorf("MAIL with SIZE: got %v %s", se.EnhancedCode, se.Message)
	}
	b.Reset()
	// Without SIZE it is refused once its bytes do not fit.
	big := "Subject: b\r\nMessage-ID: <b@shop.example>\r\n\r\n" + strings.Repeat(line, 600<<10/len(line))
	_, err := send(b, "crm@shop.example", []string{"piet@example.com"}, big)
	se = wantCode(t, err, 452)
	if se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Errorf("DATA: got %v %s", se.EnhancedCode, se.Message)
	}
	if got := p.metric(t, "optinproxy_smtp_replies_total", map[string]string{"code": "452"}); got != 2 {
		t.Errorf("452 replies counted: %v, want 2", got)
	}

	// A finishes and is relayed; then the budget is free for B.
	a.writeRaw(".\r\n")
	if code, msg, err := a.read(); err != nil || code != 250 {
		t.Fatalf("A's message: %d %s %v", code, msg, err)
	}
	if got := inflight(); got != 0 {
		t.Errorf("bytes held after A's reply: %v, want 0", got)
	}
	if _, err := send(b, "crm@shop.example", []string{"piet@example.com"}, big); err != nil {
		t.Fatalf("B after A: %v", err)
	}
	if got := len(p.up.deliveries()); got != 2 {
		t.Errorf("upstream got %d messages, want 2", got)
	}
}

// waitFor waits, a bounded time, for cond to hold.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
