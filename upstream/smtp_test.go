package upstream_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/upstream"
)

func newSender(t *testing.T, opts upstream.Options) upstream.Sender {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	s, err := upstream.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sendOne(s upstream.Sender, to ...string) ([]error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if len(to) == 0 {
		to = []string{"jan@example.com"}
	}
	return s.Send(ctx, "crm@shop.example", to, testMsg, nil)
}

// starttls: required against a server that does not offer STARTTLS fails
// with an error that says so, before any MAIL: nothing goes out in plain
// text.
func TestRequiredStartTLSRefusesPlainServer(t *testing.T) {
	m := startMailer(t, plainMailer, nil, nil)
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, StartTLS: "required"})
	_, err := sendOne(s)
	if err == nil {
		t.Fatal("sent over plain text although STARTTLS is required")
	}
	if !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("error %q does not name STARTTLS", err)
	}
	if isSMTPError(err) {
		t.Errorf("error %v is an SMTP reply; the proxy would pass it to its client as the upstream's answer", err)
	}
	// A second try refuses as well: nothing goes out in plain text.
	if _, err := sendOne(s); err == nil {
		t.Fatal("second send went out in plain text")
	}
	if n := m.mailCount(); n != 0 {
		t.Errorf("server saw %d MAIL commands, want none", n)
	}
}

// starttls: required against a server that offers it works, encrypted.
func TestRequiredStartTLSAgainstTLSServer(t *testing.T) {
	cert, client := testCert(t)
	m := startMailer(t, startTLSMailer, cert, nil)
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, StartTLS: "required", TLSConfig: client})
	if _, err := sendOne(s); err != nil {
		t.Fatal(err)
	}
	if got := m.all(); len(got) != 1 || !got[0].tls {
		t.Fatalf("server got %+v, want one message over TLS", got)
	}
}

// Opportunistic (the default) against a server offering STARTTLS uses it:
// the server saw the transaction on an encrypted connection.
func TestOpportunisticStartTLSUsesTLS(t *testing.T) {
	cert, client := testCert(t)
	m := startMailer(t, startTLSMailer, cert, nil)
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, TLSConfig: client})
	for i := 0; i < 2; i++ { // dialled, then pooled
		if _, err := sendOne(s); err != nil {
			t.Fatal(err)
		}
	}
	got := m.all()
	if len(got) != 2 {
		t.Fatalf("server got %d messages", len(got))
	}
	for _, g := range got {
		if !g.tls {
			t.Error("message went over plain text although STARTTLS was offered")
		}
	}
}

// Opportunistic against a server without STARTTLS sends in plain text.
func TestOpportunisticPlainServer(t *testing.T) {
	m := startMailer(t, plainMailer, nil, nil)
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr})
	if _, err := sendOne(s); err != nil {
		t.Fatal(err)
	}
	if got := m.all(); len(got) != 1 || got[0].tls {
		t.Fatalf("server got %+v, want one plain message", got)
	}
}

// Opportunistic TLS with a certificate the proxy does not trust fails:
// a failed handshake is not read as "no STARTTLS" and never downgrades
// to plain text.
func TestStartTLSUntrustedCertificateFails(t *testing.T) {
	cert, _ := testCert(t)
	m := startMailer(t, startTLSMailer, cert, nil)
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, TLSConfig: &tls.Config{ServerName: "upstream.test"}})
	for i := 0; i < 2; i++ {
		if _, err := sendOne(s); err == nil {
			t.Fatal("sent although the certificate is not trusted")
		}
	}
	if n := m.mailCount(); n != 0 {
		t.Errorf("server saw %d MAIL commands", n)
	}
}

// smtps:// speaks TLS from the first byte.
func TestImplicitTLS(t *testing.T) {
	cert, client := testCert(t)
	m := startMailer(t, implicitMailer, cert, nil)
	s := newSender(t, upstream.Options{URL: "smtps://" + m.addr, TLSConfig: client})
	if _, err := sendOne(s); err != nil {
		t.Fatal(err)
	}
	if got := m.all(); len(got) != 1 || !got[0].tls {
		t.Fatalf("server got %+v, want one message over TLS", got)
	}
	// Plain smtp:// to the same port gets no SMTP greeting and fails.
	p := newSender(t, upstream.Options{URL: "smtp://" + m.addr, Timeout: 500 * time.Millisecond})
	if _, err := sendOne(p); err == nil {
		t.Error("plain SMTP to an implicit-TLS port succeeded")
	}
}

// With Username and Password the sender authenticates (AUTH PLAIN, over
// TLS) before MAIL; the server records who.
func TestUpstreamAuth(t *testing.T) {
	cert, client := testCert(t)
	m := startMailer(t, startTLSMailer, cert, map[string]string{"relay": "pa55"})
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, TLSConfig: client, Username: "relay", Password: "pa55"})
	if _, err := sendOne(s); err != nil {
		t.Fatal(err)
	}
	got := m.all()
	if len(got) != 1 || got[0].user != "relay" || !got[0].tls {
		t.Fatalf("server got %+v, want one message from user relay over TLS", got)
	}
}

// A wrong upstream password fails every send before MAIL. The error must
// not be an SMTP reply: the proxy passes an upstream's 5xx on to its own
// client, which would read "535 authentication failed" as a verdict on
// its message (or its own login) and bounce it, while the fault is the
// proxy's configuration; as "upstream unreachable" it becomes a 451 and
// the client retries once the password is fixed.
func TestUpstreamAuthWrongPassword(t *testing.T) {
	cert, client := testCert(t)
	m := startMailer(t, startTLSMailer, cert, map[string]string{"relay": "pa55"})
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, TLSConfig: client, Username: "relay", Password: "wrong"})
	_, err := sendOne(s)
	if err == nil {
		t.Fatal("send succeeded with a wrong password")
	}
	if !strings.Contains(err.Error(), "auth") {
		t.Errorf("error %q does not say auth failed", err)
	}
	if isSMTPError(err) {
		t.Errorf("error %v is an SMTP reply; the proxy would relay the upstream's 535 to its client", err)
	}
	if n := m.mailCount(); n != 0 {
		t.Errorf("server saw %d MAIL commands", n)
	}
}

// An upstream that offered STARTTLS and, after a restart, no longer does:
// an opportunistic sender carries on in plain text (and does not crash).
func TestStartTLSWithdrawn(t *testing.T) {
	cert, client := testCert(t)
	m := startMailer(t, startTLSMailer, cert, nil)
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, TLSConfig: client})
	if _, err := sendOne(s); err != nil {
		t.Fatal(err)
	}
	m.stop()
	m2 := startMailerAt(t, m.addr, plainMailer, nil, nil)
	if _, err := sendOne(s); err != nil {
		t.Fatalf("send after the upstream dropped STARTTLS: %v", err)
	}
	if got := m2.all(); len(got) != 1 || got[0].tls {
		t.Fatalf("restarted server got %+v, want one plain message", got)
	}
}

// Many first sends at once against a plain server: every dial finds no
// STARTTLS on its own, and all get through.
func TestConcurrentFirstSends(t *testing.T) {
	m := startMailer(t, plainMailer, nil, nil)
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, PoolSize: 4})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := sendOne(s, fmt.Sprintf("r%d@example.com", i)); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(m.all()); n != 16 {
		t.Errorf("server got %d messages, want 16", n)
	}
}

// The upstream's refusal of some recipients comes back per recipient,
// in order, while the others get the one copy; when it refuses them all,
// err says so and rcptErrs still names each.
func TestRecipientRefusalsPerRecipient(t *testing.T) {
	m := startMailer(t, plainMailer, nil, nil)
	full := &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
	m.mu.Lock()
	m.refuse = map[string]*smtp.SMTPError{"b@example.com": full, "d@example.com": full}
	m.mu.Unlock()
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr})
	rcptErrs, err := sendOne(s, "a@example.com", "b@example.com", "c@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(rcptErrs) != 3 || rcptErrs[0] != nil || rcptErrs[2] != nil || !isSMTPError(rcptErrs[1]) {
		t.Fatalf("rcptErrs %v, want only the second set", rcptErrs)
	}
	if got := m.all(); len(got) != 1 || strings.Join(got[0].to, ",") != "a@example.com,c@example.com" {
		t.Fatalf("server got %+v", got)
	}
	rcptErrs, err = sendOne(s, "b@example.com", "d@example.com")
	if !isSMTPError(err) || len(rcptErrs) != 2 || rcptErrs[0] == nil || rcptErrs[1] == nil {
		t.Fatalf("all refused: rcptErrs %v, err %v", rcptErrs, err)
	}
	// The connection was reset, not broken: the next send reuses it.
	if _, err := sendOne(s, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := len(m.all()); n != 2 {
		t.Errorf("server got %d messages, want 2", n)
	}
}

// A bad URL or starttls value is refused by New.
func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []upstream.Options{
		{URL: "ftp://example.com"},
		{URL: "smtp://"},
		{URL: "smtp://example.com", StartTLS: "always"},
		{URL: "://"},
	} {
		if s, err := upstream.New(o); err == nil {
			s.Close()
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// rawUpstream listens on loopback and hands every connection to serve;
// for upstreams that misbehave below the SMTP level.
func rawUpstream(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// An upstream that accepts the connection but never greets: the send
// fails within Timeout (here 300ms), and a second send is not held longer.
func TestSilentUpstreamTimesOut(t *testing.T) {
	addr := rawUpstream(t, func(c net.Conn) {
		// Hold it open, say nothing, until the test ends.
		t.Cleanup(func() { c.Close() })
	})
	s := newSender(t, upstream.Options{URL: "smtp://" + addr, Timeout: 300 * time.Millisecond})
	for i := 0; i < 2; i++ {
		start := time.Now()
		_, err := sendOne(s)
		if err == nil {
			t.Fatal("send to a silent upstream succeeded")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("send took %v, want about the 300ms timeout", d)
		}
		if isSMTPError(err) {
			t.Errorf("error %v is an SMTP reply", err)
		}
	}
}

// An upstream whose greeting refuses the proxy (554) is a setup problem,
// not a verdict on the message: the error is not an SMTP reply, so the
// proxy answers 451 and its client retries rather than bouncing.
func TestRefusingGreetingIsNotAReply(t *testing.T) {
	addr := rawUpstream(t, func(c net.Conn) {
		io.WriteString(c, "554 5.7.1 no service for you\r\n")
		c.Close()
	})
	s := newSender(t, upstream.Options{URL: "smtp://" + addr})
	_, err := sendOne(s)
	if err == nil || !strings.Contains(err.Error(), "no service for you") {
		t.Fatalf("error %v does not give the upstream's text", err)
	}
	if isSMTPError(err) {
		t.Errorf("error %v is an SMTP reply", err)
	}
}

// The upstream password never travels in clear text to another machine:
// a plain-text upstream off loopback gets no AUTH and no message. (On
// loopback, as in the other tests, plain AUTH is allowed.)
func TestNoPasswordWithoutTLSOffLoopback(t *testing.T) {
	ip := nonLoopbackIPv4(t)
	m := startMailerAt(t, net.JoinHostPort(ip, "0"), plainMailer, nil, map[string]string{"relay": "pa55"})
	s := newSender(t, upstream.Options{URL: "smtp://" + m.addr, Username: "relay", Password: "pa55"})
	_, err := sendOne(s)
	if err == nil || !strings.Contains(err.Error(), "without TLS") {
		t.Fatalf("send: %v, want a refusal to send the password without TLS", err)
	}
	if n := m.mailCount(); n != 0 {
		t.Errorf("upstream got %d messages", n)
	}
}

func nonLoopbackIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address on this machine")
	return ""
}

// rawSMTP answers a minimal SMTP conversation on c and breaks it: at the
// DATA command when atData, else after the message's final dot, which it
// counts, without a reply.
func rawSMTP(c net.Conn, dots *atomic.Int32, atData bool) {
	defer c.Close()
	r := bufio.NewReader(c)
	io.WriteString(c, "220 raw.example ESMTP\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
		case strings.HasPrefix(cmd, "EHLO"):
			io.WriteString(c, "250-raw.example\r\n250 8BITMIME\r\n")
		case cmd == "DATA" && atData:
			return
		case cmd == "DATA":
			io.WriteString(c, "354 go ahead\r\n")
			for line != ".\r\n" {
				if line, err = r.ReadString('\n'); err != nil {
					return
				}
			}
			dots.Add(1)
			return
		default:
			io.WriteString(c, "250 ok\r\n")
		}
	}
}

// The connection breaks after the whole message and its final dot went
// out: the upstream may have taken it, so Send says the reply was lost
// (ErrReplyLost, and MaybeDelivered for callers that do not import this
// package) and does not send it a second time. A break before the
// message went out is an ordinary failure.
func TestConnectionDroppedAfterDotIsReplyLost(t *testing.T) {
	for _, atData := range []bool{false, true} {
		var dots atomic.Int32
		addr := rawUpstream(t, func(c net.Conn) { rawSMTP(c, &dots, atData) })
		s := newSender(t, upstream.Options{URL: "smtp://" + addr})
		_, err := sendOne(s)
		if err == nil {
			t.Fatalf("break at DATA %v: send succeeded", atData)
		}
		var md interface{ MaybeDelivered() bool }
		lost := errors.Is(err, upstream.ErrReplyLost)
		maybe := errors.As(err, &md) && md.MaybeDelivered()
		if lost == atData || maybe == atData {
			t.Errorf("break at DATA %v: %v: reply lost %v, maybe delivered %v; want %v", atData, err, lost, maybe, !atData)
		}
		if isSMTPError(err) {
			t.Errorf("break at DATA %v: error %v is an SMTP reply", atData, err)
		}
		want := int32(1)
		if atData {
			want = 0
		}
		if got := dots.Load(); got != want {
			t.Errorf("break at DATA %v: the upstream got %d whole messages, want %d", atData, got, want)
		}
	}
}
