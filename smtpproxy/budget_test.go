package smtpproxy_test

import (
	"bytes"
	"fmt"
	"net/mail"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/smtpproxy"
	"optinproxy/upstream"
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

// A flood of large messages from many sessions at once never holds more
// than the budget. Two messages held open fill it first, so every
// session meets a full budget: with SIZE= it is refused at MAIL, without
// it at the end of DATA, both with 452 4.3.1. The sessions retry as a
// CRM would; once the two are done, every message gets through, reaches
// the upstream exactly once, and nothing stays held.
func TestInflightBudgetFlood(t *testing.T) {
	const (
		// Small enough for the race detector, which slows every byte
		// go-smtp reads.
		limit    = 768 << 10
		size     = 300 << 10
		sessions = 10
		each     = 2 // messages per session
	)
	up := newRecorder(t)
	// The upstream gets time enough to take every message, however slow
	// the machine: one whose reply came too late would count as sent and
	// still be arriving when the deliveries are counted.
	sender, err := upstream.New(upstream.Options{URL: "smtp://" + up.addr, Timeout: time.Minute, DotTimeout: time.Minute, PoolSize: sessions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	p := startProxyTo(t, up, func(o *smtpproxy.Options) {
		o.MaxInflightBytes = limit
		o.Upstream = sender
	})
	inflight := func() float64 { return p.metric(t, "optinproxy_smtp_inflight_bytes", nil) }
	refusals := func() float64 { return p.metric(t, "optinproxy_smtp_replies_total", map[string]string{"code": "452"}) }
	line := strings.Repeat("y", 78) + "\r\n"
	body := strings.Repeat(line, size/len(line))
	message := func(id string) string {
		return "From: <crm@shop.example>\r\nSubject: flood\r\nMessage-ID: <" + id + "@shop.example>\r\n\r\n" + body
	}

	// The holders announce their size, so that each holds its whole
	// buffer, the size and 64 KiB, from its first 64 KiB on: the two
	// leave less than another message's first 64 KiB free. That needs
	// their first buffers to be new ones of 64 KiB: two collections
	// empty the pool of buffers that earlier tests left for reuse.
	runtime.GC()
	runtime.GC()
	var holders []*rawClient
	for i := range 2 {
		msg := message(fmt.Sprintf("holder%d", i))
		h := dialRaw(t, p.addr)
		h.must(250, "EHLO holder.test")
		h.must(250, "MAIL FROM:<crm@shop.example> SIZE=%d", len(msg))
		h.must(250, "RCPT TO:<holder%d@example.com>", i)
		h.must(354, "DATA")
		h.writeRaw(msg)
		waitFor(t, "the holder's bytes held", func() bool { return inflight() >= float64((i+1)*size) })
		holders = append(holders, h)
	}
	if free := limit - inflight(); free >= 64<<10 {
		t.Fatalf("the holders leave %v bytes free", free)
	}

	type result struct {
		refused int
		err     error
	}
	results := make(chan result, sessions)
	// refusedOnce gets one value from each session, at its first 452 or
	// when it ends without one.
	refusedOnce := make(chan struct{}, sessions)
	for s := range sessions {
		go func() {
			var r result
			var once sync.Once
			signal := func() { once.Do(func() { refusedOnce <- struct{}{} }) }
			defer func() { signal(); results <- r }()
			c, err := smtp.Dial(p.addr)
			if err != nil {
				r.err = err
				return
			}
			defer c.Close()
			opts := &smtp.MailOptions{}
			if s%2 == 0 {
				opts.Size = int64(len(message("x")))
			}
			for m := range each {
				msg := message(fmt.Sprintf("flood%d-%d", s, m))
				for {
					err := sendWith(c, opts, fmt.Sprintf("r%d@example.com", s), msg)
					if err == nil {
						break
					}
					se, ok := err.(*smtp.SMTPError)
					if !ok || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
						r.err = fmt.Errorf("session %d, message %d: %v", s, m, err)
						return
					}
					r.refused++
					signal()
					if err := c.Reset(); err != nil {
						r.err = err
						return
					}
					time.Sleep(100 * time.Millisecond) // a CRM waits before it retries
				}
			}
		}()
	}
	// Every session's first message is refused while the holders hold.
	for range sessions {
		<-refusedOnce
	}
	for i, h := range holders {
		h.writeRaw(".\r\n")
		// The relay shares the machine with the flood's retries.
		h.conn.SetDeadline(time.Now().Add(time.Minute))
		if code, msg, err := h.tp.ReadResponse(0); err != nil || code != 250 {
			t.Fatalf("holder %d: %d %s %v", i, code, msg, err)
		}
	}
	refused := 0
	for range sessions {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
		}
		refused += r.refused
	}
	if t.Failed() {
		return
	}

	if peak := p.metric(t, "optinproxy_smtp_inflight_bytes_peak", nil); peak > limit || peak < 2*size {
		t.Errorf("most bytes held at once: %v, want between %d and the budget %d", peak, 2*size, limit)
	}
	if got := inflight(); got != 0 {
		t.Errorf("bytes held after the flood: %v, want 0", got)
	}
	if got := refusals(); got != float64(refused) || refused < sessions {
		t.Errorf("452 replies counted %v, sessions saw %d, want the same and at least %d", got, refused, sessions)
	}
	arrived := map[string]int{}
	for _, d := range p.up.deliveries() {
		m, err := mail.ReadMessage(bytes.NewReader(d.data))
		if err != nil {
			t.Fatal(err)
		}
		arrived[m.Header.Get("Message-ID")]++
	}
	want := []string{"<holder0@shop.example>", "<holder1@shop.example>"}
	for s := range sessions {
		for m := range each {
			want = append(want, fmt.Sprintf("<flood%d-%d@shop.example>", s, m))
		}
	}
	for _, id := range want {
		if arrived[id] != 1 {
			t.Errorf("%s arrived upstream %d times, want once", id, arrived[id])
		}
	}
	if len(arrived) != len(want) {
		t.Errorf("upstream got %d distinct messages, want %d", len(arrived), len(want))
	}
}

// sendWith runs one transaction to one recipient with the MAIL options.
func sendWith(c *smtp.Client, opts *smtp.MailOptions, to, msg string) error {
	if err := c.Mail("crm@shop.example", opts); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	return w.Close()
}
