package smtpproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/smtpproxy"
	"optinproxy/upstream"
)

func TestRelayAddsTraceAndKeepsMessage(t *testing.T) {
	p := startProxy(t, nil)
	c := p.dial(t)
	text, err := send(c, "crm@shop.example", []string{"Jan@Example.com", "piet@example.org"}, plainMsg)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(text, "relayed 2, blocked 0") {
		t.Errorf("reply %q does not give the counts", text)
	}
	got := p.up.deliveries()
	if len(got) != 1 {
		t.Fatalf("upstream got %d transactions, want 1 for both recipients", len(got))
	}
	d := got[0]
	if d.from != "crm@shop.example" || strings.Join(d.to, ",") != "Jan@Example.com,piet@example.org" {
		t.Errorf("envelope %q -> %q: the addresses must go upstream as the client gave them", d.from, d.to)
	}
	first, rest, _ := bytes.Cut(d.data, []byte("\r\n"))
	if !bytes.HasPrefix(first, []byte("Received: from ")) {
		t.Errorf("first line %q, want the Received: header on top", first)
	}
	// Everything after our Received: (folded over some lines) is the
	// message as the client sent it, byte for byte.
	if i := bytes.Index(rest, []byte(plainMsg)); i < 0 || !bytes.HasSuffix(d.data, []byte(plainMsg)) {
		t.Errorf("message not passed on unchanged:\n%s", d.data)
	} else if added := d.data[:len(d.data)-len(plainMsg)]; bytes.Contains(added, []byte("\r\n\r\n")) || !bytes.HasSuffix(added, []byte("\r\n")) {
		t.Errorf("the Received: field is not one whole field:\n%q", added)
	}
	if bytes.Count(d.data, []byte("Message-ID:")) != 1 || bytes.Contains(d.data, []byte("Message-Id:")) {
		t.Errorf("a Message-ID was added although the message had one:\n%s", d.data)
	}
}

func TestRelayAddsMissingMessageID(t *testing.T) {
	p := startProxy(t, nil)
	msg := "From: a@shop.example\r\nSubject: no id\r\n\r\nbody\r\n"
	if _, err := send(p.dial(t), "a@shop.example", []string{"b@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	d := p.up.deliveries()[0].data
	if !bytes.Contains(d, []byte("Message-Id: <")) || !bytes.Contains(d, []byte("@relay.test>")) {
		t.Errorf("no Message-Id added:\n%s", d)
	}
	if !bytes.HasSuffix(d, []byte(msg)) {
		t.Errorf("message changed:\n%s", d)
	}
}

func TestUpstreamConnectionsAreReused(t *testing.T) {
	p := startProxy(t, nil)
	c := p.dial(t)
	if _, err := send(c, "a@shop.example", []string{"b@example.com"}, fresh()); err != nil {
		t.Fatal(err)
	}
	// The first dial may take two connections: the first finds out that
	// the upstream offers no STARTTLS.
	before := p.up.connections()
	for i := 0; i < 5; i++ {
		if _, err := send(c, "a@shop.example", []string{"b@example.com"}, fresh()); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if n := len(p.up.deliveries()); n != 6 {
		t.Fatalf("upstream got %d messages, want 6", n)
	}
	if n := p.up.connections(); n != before {
		t.Errorf("upstream saw %d new connections for 5 sequential messages, want 0 (pooled)", n-before)
	}
}

func TestStalePooledConnectionIsRetriedOnce(t *testing.T) {
	p := startProxy(t, nil)
	c := p.dial(t)
	if _, err := send(c, "a@shop.example", []string{"b@example.com"}, fresh()); err != nil {
		t.Fatal(err)
	}
	// The upstream restarts on the same port: the pooled connection is
	// dead, which the proxy finds out only when it uses it.
	p.up.restart(t)
	if _, err := send(c, "a@shop.example", []string{"b@example.com"}, fresh()); err != nil {
		t.Fatalf("send after upstream restart: %v", err)
	}
	if n := len(p.up.deliveries()); n != 2 {
		t.Errorf("upstream has %d messages, want 2", n)
	}
}

func TestUpstreamFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		knob     func(r *recorder)
		down     bool
		wantCode int
		wantText string
	}{
		{name: "closed", down: true, wantCode: 451, wantText: "not reachable"},
		{name: "4xx at MAIL", knob: func(r *recorder) {
			r.failMail = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}, wantCode: 451, wantText: "deferred"},
		{name: "4xx at DATA", knob: func(r *recorder) {
			r.failData = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "disk full"}
		}, wantCode: 451, wantText: "disk full"},
		{name: "5xx at DATA passed through", knob: func(r *recorder) {
			r.failData = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam detected"}
		}, wantCode: 554, wantText: "Upstream: spam detected"},
		{name: "5xx for every RCPT", knob: func(r *recorder) {
			r.failRcpt["b@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}, wantCode: 550, wantText: "no such user"},
		{name: "slow MAIL times out", knob: func(r *recorder) { r.delayMail = 3 * time.Second }, wantCode: 451},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, nil)
			if tc.knob != nil {
				p.up.set(tc.knob)
			}
			if tc.down {
				p.up.stop()
			}
			_, err := send(p.dial(t), "a@shop.example", []string{"b@example.com"}, plainMsg)
			se := wantCode(t, err, tc.wantCode)
			if !contains(se.Message, tc.wantText) {
				t.Errorf("reply %q does not say %q", se.Message, tc.wantText)
			}
			if n := len(p.up.deliveries()); n != 0 {
				t.Errorf("upstream recorded %d messages, want none", n)
			}
			// The proxy stays up: the next message goes through.
			p.up.set(func(r *recorder) {
				r.failMail, r.failData, r.delayMail = nil, nil, 0
				r.failRcpt = map[string]*smtp.SMTPError{}
			})
			if tc.down {
				return
			}
			if _, err := send(p.dial(t), "a@shop.example", []string{"b@example.com"}, fresh()); err != nil {
				t.Fatalf("after the failure: %v", err)
			}
			if n := len(p.up.deliveries()); n != 1 {
				t.Errorf("upstream has %d messages after recovery, want 1", n)
			}
		})
	}
}

// A reply to the final dot that never comes: the copy may have been
// delivered. The proxy says so, does not send it again by itself, and
// marks it, so that the client's retry does not deliver it twice either
// (honest replies).
func TestSlowDataReplyIsNotResent(t *testing.T) {
	p := startProxy(t, nil)
	p.up.set(func(r *recorder) { r.delayData = 3 * time.Second })
	msg := strings.Replace(plainMsg, "<m1@shop.example>", "<slow@shop.example>", 1)
	text, err := send(p.dial(t), "a@shop.example", []string{"b@example.com"}, msg)
	if err != nil || !strings.Contains(text, "the upstream's connection broke after a copy was sent, before it confirmed it: it may have been delivered, and will not be sent again") {
		t.Fatalf("reply after the upstream's reply was lost: %q, %v; want 250 saying it may have been delivered", text, err)
	}
	time.Sleep(3500 * time.Millisecond) // let the recorder finish
	p.up.set(func(r *recorder) { r.delayData = 0 })
	text, err = send(p.dial(t), "a@shop.example", []string{"b@example.com"}, msg)
	if err != nil || !strings.Contains(text, "already relayed to its 1 allowed recipient; blocked 0") {
		t.Errorf("the client's retry: %q, %v; want 250 already relayed", text, err)
	}
	if n := len(p.up.deliveries()); n != 1 {
		t.Errorf("upstream got the message %d times, want once", n)
	}
}

func TestPartialFailureRetryDeliversOnlyTheRest(t *testing.T) {
	for _, msg := range []string{plainMsg, "Subject: no message id\r\n\r\nbody\r\n"} {
		p := startProxy(t, nil)
		p.up.set(func(r *recorder) {
			r.failRcpt["c@example.com"] = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		})
		rcpts := []string{"a@example.com", "c@example.com", "d@example.com"}
		_, err := send(p.dial(t), "crm@shop.example", rcpts, msg)
		se := wantCode(t, err, 451)
		if !contains(se.Message, "Relayed to 2 of 3") || !contains(se.Message, "<c@example.com>: 452") {
			t.Errorf("partial reply %q", se.Message)
		}
		p.up.set(func(r *recorder) { r.failRcpt = map[string]*smtp.SMTPError{} })
		// The CRM retries the same message to the same recipients.
		text, err := send(p.dial(t), "crm@shop.example", rcpts, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !contains(text, "relayed 1") || !contains(text, "2 relayed earlier") {
			t.Errorf("retry reply %q", text)
		}
		want := map[string]int{"a@example.com": 1, "c@example.com": 1, "d@example.com": 1}
		if got := p.up.received(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("copies per recipient %v, want %v", got, want)
		}
		// A third try finds nothing left to do.
		text, err = send(p.dial(t), "crm@shop.example", rcpts, msg)
		if err != nil || !contains(text, "already relayed") {
			t.Errorf("third try: %q %v", text, err)
		}
		if n := len(p.up.deliveries()); n != 2 {
			t.Errorf("upstream transactions %d, want 2", n)
		}
	}
}

func TestLimits(t *testing.T) {
	p := startProxy(t, func(o *smtpproxy.Options) { o.MaxMessageBytes = 1024; o.MaxRecipients = 2 })
	c := p.dial(t)
	big := plainMsg + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 60)
	_, err := send(c, "a@shop.example", []string{"b@example.com"}, big)
	se := wantCode(t, err, 552)
	if se.EnhancedCode != (smtp.EnhancedCode{5, 3, 4}) {
		t.Errorf("enhanced code %v, want 5.3.4", se.EnhancedCode)
	}
	c.Reset()
	_, err = send(c, "a@shop.example", []string{"b@example.com", "c@example.com", "d@example.com"}, plainMsg)
	wantCode(t, err, 452)
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages", n)
	}
	for code, want := range map[string]float64{"552": 1, "452": 1} {
		if v := p.metric(t, "optinproxy_smtp_replies_total", map[string]string{"code": code}); v != want {
			t.Errorf("%s replies counted %v, want %v", code, v, want)
		}
	}
}

func TestOverlongLine(t *testing.T) {
	p := startProxy(t, nil)
	_, err := send(p.dial(t), "a@shop.example", []string{"b@example.com"}, plainMsg+strings.Repeat("x", 4096)+"\r\n")
	wantCode(t, err, 500)
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages", n)
	}
	if _, err := send(p.dial(t), "a@shop.example", []string{"b@example.com"}, fresh()); err != nil {
		t.Fatalf("next session: %v", err)
	}
}

func TestConcurrentSessions(t *testing.T) {
	p := startProxy(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := smtp.Dial(p.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := 0; j < 5; j++ {
				msg := fmt.Sprintf("Message-ID: <%d.%d@shop.example>\r\nSubject: s\r\n\r\nbody\r\n", i, j)
				if _, err := send(c, "a@shop.example", []string{fmt.Sprintf("r%d@example.com", i)}, msg); err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(p.up.deliveries()); n != 100 {
		t.Errorf("upstream got %d, want 100", n)
	}
	if n := p.up.connections(); n > 21 {
		t.Errorf("upstream saw %d connections for 20 sessions", n)
	}
}

// A message's personal copies share the upstream's pool with every other
// session's: with a pool of 3 and six sessions of ten recipients each,
// the upstream never sees more than 3 connections, and every copy
// arrives once. The upstream holds the first three copies until all
// three connections are busy, so the other copies find none free.
func TestCopiesBoundedByUpstreamPool(t *testing.T) {
	const size, sessions, rcpts = 3, 6, 10
	up := newRecorder(t)
	up.set(func(r *recorder) { r.hold = newBarrier(size) })
	sender, err := upstream.New(upstream.Options{URL: "smtp://" + up.addr, Timeout: 5 * time.Second, PoolSize: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	store := teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db"))
	ledger := newLedger(t, store)
	var to []string
	for i := range rcpts {
		a := fmt.Sprintf("r%d@example.com", i)
		if _, err := ledger.Grant(context.Background(), mustAddr(t, a), "newsletter", optin.ConsentChange{Source: "form", Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		to = append(to, a)
	}
	p := enforcing(t, up, store, func(o *smtpproxy.Options) {
		o.Upstream = sender
		o.Personalize = tagCopy
		o.UpstreamTimeout = 30 * time.Second
	})
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			c, err := smtp.Dial(p.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			text, err := send(c, "crm@shop.example", to, msgWith(fmt.Sprintf("pool%d", i), "newsletter"))
			if err != nil || !contains(text, fmt.Sprintf("relayed %d", rcpts)) {
				t.Errorf("session %d: %q %v", i, text, err)
			}
		})
	}
	wg.Wait()
	if n := up.connections(); n != size {
		t.Errorf("the upstream saw %d connections, want %d", n, size)
	}
	got := up.received()
	for _, a := range to {
		if got[a] != sessions {
			t.Errorf("%s got %d copies, want %d", a, got[a], sessions)
		}
	}
}

// A message that finds every upstream connection busy until its hand-off
// time is up gets a reply that says so, not that the upstream cannot be
// reached, and nothing of it goes out. Two proxies share a pool of one:
// one holds the connection at a slow final dot while the other's message
// waits for it.
func TestUpstreamBusyHasItsOwnReply(t *testing.T) {
	up := newRecorder(t)
	up.set(func(r *recorder) { r.delayData = 1500 * time.Millisecond })
	sender, err := upstream.New(upstream.Options{URL: "smtp://" + up.addr, Timeout: 5 * time.Second, DotTimeout: 5 * time.Second, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	holder := startProxyTo(t, up, func(o *smtpproxy.Options) { o.Upstream = sender })
	waiter := startProxyTo(t, up, func(o *smtpproxy.Options) {
		o.Upstream = sender
		o.UpstreamTimeout = 300 * time.Millisecond
	})
	held := make(chan error, 1)
	go func() {
		_, err := send(holder.dial(t), "crm@shop.example", []string{"jan@example.com"}, msgWith("holds-the-pool", "transactional"))
		held <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); up.connections() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first message never reached the upstream")
		}
	}
	_, err = send(waiter.dial(t), "crm@shop.example", []string{"piet@example.com"}, msgWith("waits-for-it", "transactional"))
	se := wantCode(t, err, 451)
	if se.EnhancedCode != [3]int{4, 4, 5} || !strings.Contains(se.Message, "busy") {
		t.Errorf("the waiting message: %d %v %q, want 451 4.4.5 saying the connections were busy", se.Code, se.EnhancedCode, se.Message)
	}
	if err := <-held; err != nil {
		t.Fatalf("the message holding the connection: %v", err)
	}
	if got := up.deliveries(); len(got) != 1 || got[0].to[0] != "jan@example.com" {
		t.Errorf("the upstream got %d messages, want only the one that held the connection", len(got))
	}
}
