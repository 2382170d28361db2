package smtpproxy_test

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/smtpproxy"
	"optinproxy/upstream"
)

// rawSession dials the proxy, says EHLO and opens a transaction for
// jan@example.com.
func rawSession(t *testing.T, p *proxy) *rawClient {
	t.Helper()
	r := dialRaw(t, p.addr)
	r.must(250, "EHLO client.test")
	r.must(250, "MAIL FROM:<crm@shop.example>")
	r.must(250, "RCPT TO:<jan@example.com>")
	return r
}

// wantReply fails unless msg (a reply text) starts with the enhanced code.
func wantEnhanced(t *testing.T, msg, enhanced string) {
	t.Helper()
	if !strings.HasPrefix(msg, enhanced+" ") {
		t.Errorf("reply %q, want enhanced code %s", msg, enhanced)
	}
}

// Senders that do not parse as addresses are refused at MAIL: what the
// SMTP path syntax already rules out gets go-smtp's 501 5.5.2, and a
// path that parses but is no valid address (a bad domain) gets our 553
// 5.1.7. Either way the session goes on.
func TestMalformedSender(t *testing.T) {
	p := startProxy(t, nil)
	r := dialRaw(t, p.addr)
	r.must(250, "EHLO client.test")
	wantEnhanced(t, r.must(501, "MAIL FROM:<not an address>"), "5.5.2")
	wantEnhanced(t, r.must(501, "MAIL FROM:<@@>"), "5.5.2")
	wantEnhanced(t, r.must(501, "MAIL FROM:<crm@>"), "5.5.2")
	for _, from := range []string{"crm@-shop-.example", "crm@shop..example", "crm@[300.1.2.3]"} {
		wantEnhanced(t, r.must(553, "MAIL FROM:<%s>", from), "5.1.7")
	}
	if v := p.replies(t, "553"); v != 3 {
		t.Errorf("553 replies counted %v, want 3", v)
	}
	r.must(250, "MAIL FROM:<crm@shop.example>")
	r.must(250, "MAIL FROM:<>") // the null sender is a valid sender
}

// Recipients that do not parse as addresses are refused at RCPT with 501
// (5.5.2 from go-smtp's path syntax, 5.1.3 from ours), and none of them
// reaches the upstream: the message goes to the one valid recipient.
func TestMalformedRecipients(t *testing.T) {
	p := startProxy(t, nil)
	r := rawSession(t, p)
	wantEnhanced(t, r.must(501, "RCPT TO:<@@>"), "5.5.2")
	wantEnhanced(t, r.must(501, "RCPT TO:<a b@example.com>"), "5.5.2")
	wantEnhanced(t, r.must(501, "RCPT TO:<a@b@example.com>"), "5.1.3")
	wantEnhanced(t, r.must(501, "RCPT TO:<jan@-example-.com>"), "5.1.3")
	wantEnhanced(t, r.must(501, "RCPT TO:<jan@example..com>"), "5.1.3")
	r.must(354, "DATA")
	r.writeRaw(plainMsg + ".\r\n")
	if code, msg, err := r.read(); err != nil || code != 250 {
		t.Fatalf("DATA: %d %s %v", code, msg, err)
	}
	got := p.up.deliveries()
	if len(got) != 1 || strings.Join(got[0].to, ",") != "jan@example.com" {
		t.Fatalf("upstream got %+v, want one copy to jan@example.com", got)
	}
	if v := p.replies(t, "501"); v != 3 {
		t.Errorf("501 replies counted %v, want our 3", v)
	}
}

// Commands out of place or unknown get 5xx and change nothing.
func TestBadCommands(t *testing.T) {
	p := startProxy(t, nil)
	r := dialRaw(t, p.addr)
	r.must(502, "MAIL FROM:<crm@shop.example>") // before EHLO
	r.must(250, "EHLO client.test")
	wantEnhanced(t, r.must(500, "FROB now"), "5.5.2")       // unknown verb
	wantEnhanced(t, r.must(501, "FROBNICATE now"), "5.5.2") // not even a verb
	r.must(502, "DATA")                                     // before MAIL
	r.must(502, "RCPT TO:<jan@example.com>")
	r.must(250, "MAIL FROM:<crm@shop.example>")
	r.must(502, "DATA") // before RCPT
	r.must(250, "RCPT TO:<jan@example.com>")
	r.must(354, "DATA")
	r.writeRaw(plainMsg + ".\r\n")
	if code, msg, err := r.read(); err != nil || code != 250 {
		t.Fatalf("DATA: %d %s %v", code, msg, err)
	}
	if n := len(p.up.deliveries()); n != 1 {
		t.Errorf("upstream got %d messages, want 1", n)
	}
}

// A message whose header cannot be parsed is refused with 554 5.6.0 and
// not relayed: the proxy would otherwise have to guess where the header
// ends. The connection stays usable.
func TestMalformedHeader(t *testing.T) {
	p := startProxy(t, nil)
	for _, msg := range []string{
		" bad continuation\r\nSubject: x\r\n\r\nbody\r\n",
		"This is no header\r\n\r\nbody\r\n",
		"Bad Key: x\r\n\r\nbody\r\n",
	} {
		_, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, msg)
		se := wantCode(t, err, 554)
		if se.EnhancedCode != [3]int{5, 6, 0} {
			t.Errorf("%q: enhanced code %v, want 5.6.0", msg, se.EnhancedCode)
		}
	}
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d malformed messages", n)
	}
	if v := p.metric(t, "optinproxy_smtp_messages_total", map[string]string{"result": "rejected"}); v != 3 {
		t.Errorf("rejected messages counted %v, want 3", v)
	}
}

// A client that goes away in the middle of DATA: nothing is relayed, and
// the proxy keeps serving the next client.
func TestClientGoneMidData(t *testing.T) {
	p := startProxy(t, nil)
	r := rawSession(t, p)
	r.must(354, "DATA")
	r.writeRaw("From: crm@shop.example\r\nSubject: cut off\r\n\r\nfirst half of the bo")
	r.conn.Close()

	// The proxy answers the aborted DATA with 451 (to nobody) once it
	// noticed; wait for that, bounded.
	deadline := time.Now().Add(3 * time.Second)
	for p.replies(t, "451") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("proxy did not notice the client had gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(p.up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages from a cut-off DATA", n)
	}
	if _, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, plainMsg); err != nil {
		t.Fatalf("next client: %v", err)
	}
	if n := len(p.up.deliveries()); n != 1 {
		t.Errorf("upstream got %d messages, want 1", n)
	}
	if v := p.metric(t, "optinproxy_smtp_connections", nil); v != 1 {
		t.Errorf("open connections gauge %v, want 1 (the cut-off one was counted down)", v)
	}
}

// The same recipient twice, in different case, gets one copy; the
// upstream sees the address as first given.
func TestDuplicateRecipientOneCopy(t *testing.T) {
	p := startProxy(t, nil)
	text, err := send(p.dial(t), "crm@shop.example", []string{"Jan@Example.com", "jan@example.com", "JAN@EXAMPLE.COM"}, plainMsg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "relayed 1,") {
		t.Errorf("reply %q, want relayed 1", text)
	}
	if got := p.up.received(); len(got) != 1 || got["Jan@Example.com"] != 1 {
		t.Errorf("copies per recipient %v, want one to Jan@Example.com", got)
	}
}

// A message that is only a header, without the blank line and body, is
// still a message: it is relayed, header intact.
func TestHeaderOnlyMessage(t *testing.T) {
	p := startProxy(t, nil)
	msg := "From: crm@shop.example\r\nSubject: no body\r\nMessage-ID: <nobody@shop.example>\r\n"
	if _, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	got := p.up.deliveries()
	if len(got) != 1 {
		t.Fatalf("upstream got %d messages", len(got))
	}
	if !bytes.Contains(got[0].data, []byte(msg)) {
		t.Errorf("header not passed on:\n%s", got[0].data)
	}
}

// A recipient with a non-ASCII local part and domain (RFC 6531) goes to
// an SMTPUTF8 upstream with MAIL ... SMTPUTF8 and the address as given.
func TestSMTPUTF8Relayed(t *testing.T) {
	up := startOptsUpstream(t, true)
	p := startProxy(t, func(o *smtpproxy.Options) { o.Upstream = up.sender(t) })
	c := p.dial(t)
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Fatal("proxy does not offer SMTPUTF8")
	}
	if err := c.Mail("crm@shop.example", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("jürgen@bücher.example", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "From: crm@shop.example\r\nTo: jürgen@bücher.example\r\nSubject: Grüße\r\n\r\nHallo Jürgen\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	got := up.all()
	if len(got) != 1 {
		t.Fatalf("upstream got %d messages", len(got))
	}
	if !got[0].opts.UTF8 {
		t.Error("upstream MAIL without SMTPUTF8")
	}
	if strings.Join(got[0].to, ",") != "jürgen@bücher.example" {
		t.Errorf("upstream recipients %q", got[0].to)
	}
	if !bytes.Contains(got[0].data, []byte("Hallo Jürgen")) {
		t.Errorf("body changed:\n%s", got[0].data)
	}
}

// An upstream without SMTPUTF8 cannot take a non-ASCII mailbox: the
// client gets a permanent 553 5.6.7 naming that, and nothing is sent.
func TestSMTPUTF8UpstreamLacksIt(t *testing.T) {
	up := startOptsUpstream(t, false)
	p := startProxy(t, func(o *smtpproxy.Options) { o.Upstream = up.sender(t) })
	c := p.dial(t)
	if err := c.Mail("crm@shop.example", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("jürgen@bücher.example", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: x\r\n\r\nbody\r\n")
	se := wantCode(t, w.Close(), 553)
	if se.EnhancedCode != [3]int{5, 6, 7} {
		t.Errorf("enhanced code %v, want 5.6.7", se.EnhancedCode)
	}
	if n := len(up.all()); n != 0 {
		t.Errorf("upstream got %d messages", n)
	}
	// An ASCII message still goes through the same upstream.
	if _, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	// So does an ASCII local part at an internationalized domain: the
	// domain goes upstream in its ASCII form, no SMTPUTF8 needed.
	if _, err := send(p.dial(t), "crm@shop.example", []string{"info@bücher.example"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	got := up.all()
	if len(got) != 2 || got[1].to[0] != "info@xn--bcher-kva.example" || got[1].opts.UTF8 {
		t.Errorf("upstream got %+v", got)
	}
}

// optsUpstream is a real SMTP server that records the MAIL options the
// proxy's upstream client used, which the recorder does not.
type optsUpstream struct {
	addr string
	mu   sync.Mutex
	got  []optsDelivery
}

type optsDelivery struct {
	opts smtp.MailOptions
	to   []string
	data []byte
}

func startOptsUpstream(t *testing.T, utf8 bool) *optsUpstream {
	t.Helper()
	u := &optsUpstream{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &optsSession{u: u}, nil
	}))
	srv.Domain = "upstream.test"
	srv.EnableSMTPUTF8 = utf8
	srv.ErrorLog = discardLog{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u
}

// sender is the real pooled upstream client pointed at u.
func (u *optsUpstream) sender(t *testing.T) upstream.Sender {
	s, err := upstream.New(upstream.Options{URL: "smtp://" + u.addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (u *optsUpstream) all() []optsDelivery {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]optsDelivery(nil), u.got...)
}

type optsSession struct {
	u    *optsUpstream
	opts smtp.MailOptions
	to   []string
}

func (s *optsSession) Reset()        { s.opts, s.to = smtp.MailOptions{}, nil }
func (s *optsSession) Logout() error { return nil }
func (s *optsSession) Mail(_ string, o *smtp.MailOptions) error {
	if o != nil {
		s.opts = *o
	}
	return nil
}
func (s *optsSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *optsSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.u.mu.Lock()
	s.u.got = append(s.u.got, optsDelivery{opts: s.opts, to: s.to, data: b})
	s.u.mu.Unlock()
	return nil
}

// An upstream that must speak TLS (starttls: required) but does not
// offer STARTTLS: the client hears that, not that the upstream is
// unreachable, and nothing is relayed.
func TestUpstreamWithoutRequiredStartTLS(t *testing.T) {
	up := newRecorder(t)
	sender, err := upstream.New(upstream.Options{URL: "smtp://" + up.addr, StartTLS: "required", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	p := startProxyTo(t, up, func(o *smtpproxy.Options) { o.Upstream = sender })
	_, err = send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, plainMsg)
	se := wantCode(t, err, 451)
	if se.EnhancedCode != (smtp.EnhancedCode{4, 7, 5}) || !strings.Contains(se.Message, "STARTTLS") {
		t.Errorf("reply: %v %s", se.EnhancedCode, se.Message)
	}
	if n := len(up.deliveries()); n != 0 {
		t.Errorf("upstream got %d messages", n)
	}
}

// SMTP smuggling: a message whose body holds "\r.\n" followed by a second
// envelope reaches the upstream as one message, every line ending in
// CRLF, so no upstream sees a second, undecided transaction.
func TestBareLineEndsDoNotSmuggle(t *testing.T) {
	p := startProxy(t, nil)
	c := dialRaw(t, p.addr)
	c.must(250, "EHLO crm.test")
	c.must(250, "MAIL FROM:<crm@shop.example>")
	c.must(250, "RCPT TO:<jan@example.com>")
	c.must(354, "DATA")
	c.writeRaw("Subject: hi\r\nMessage-ID: <smuggle@shop.example>\r\n\r\nbody\r.\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nbare\nlf\r\n.\r\n")
	if code, msg, err := c.read(); err != nil || code != 250 {
		t.Fatalf("DATA: %d %s %v", code, msg, err)
	}
	d := p.up.deliveries()
	if len(d) != 1 || len(d[0].to) != 1 || d[0].to[0] != "jan@example.com" {
		t.Fatalf("upstream got %+v", d)
	}
	data := string(d[0].data)
	if strings.Contains(strings.ReplaceAll(data, "\r\n", ""), "\r") || strings.Contains(strings.ReplaceAll(data, "\r\n", ""), "\n") {
		t.Errorf("a bare CR or LF reached the upstream: %q", data)
	}
	if !strings.Contains(data, "body\r\n.\r\nMAIL FROM:<evil@attacker.example>\r\n") { // un-stuffed by the receiver
		t.Errorf("the smuggled lines are not the body of the one message: %q", data)
	}
}
