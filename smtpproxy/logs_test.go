package smtpproxy_test

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"optinproxy/smtpproxy"
)

// logBuffer collects a server's log lines; the server writes from its
// connections' goroutines while the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// capture makes the proxy log into the returned buffer, at every level.
func capture(o *smtpproxy.Options) *logBuffer {
	b := &logBuffer{}
	o.Logger = slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return b
}

// lines returns the log lines holding msg.
func lines(log, msg string) []string {
	var out []string
	for l := range strings.Lines(log) {
		if strings.Contains(l, "msg="+`"`+msg+`"`) || strings.Contains(l, "msg="+msg+" ") {
			out = append(out, l)
		}
	}
	return out
}

var userHashAttr = regexp.MustCompile(`user_hash=([0-9a-f]{12})\b`)

// A failed AUTH logs a short hash of the name given, never the name: a
// password typed into the user field, or a name of any length, stays out
// of the log. A successful AUTH logs the configured user.
func TestFailedAuthLogsNoName(t *testing.T) {
	var log *logBuffer
	p := startAuthProxy(t, func(o *smtpproxy.Options) { log = capture(o) })
	secret := "Hunter2-typed-as-the-user-name"
	long := "x" + strings.Repeat("y", 1400)
	for _, name := range []string{secret, secret, long, "crm"} {
		wantCode(t, p.dial(t).Auth(sasl.NewPlainClient("", name, "wrong")), 535)
	}
	if err := p.dial(t).Auth(sasl.NewLoginClient("crm", "s3cret")); err != nil {
		t.Fatal(err)
	}
	text := log.String()
	for _, leak := range []string{secret, "yyyyyyyyyy", "wrong"} {
		if strings.Contains(text, leak) {
			t.Errorf("the log holds %q:\n%s", leak, text)
		}
	}
	failed := lines(text, "auth failed")
	if len(failed) != 4 {
		t.Fatalf("%d auth failed lines, want 4:\n%s", len(failed), text)
	}
	var hashes []string
	for _, l := range failed {
		m := userHashAttr.FindStringSubmatch(l)
		if m == nil || strings.Contains(l, " user=") {
			t.Fatalf("auth failed line without a user_hash, or with the user: %s", l)
		}
		hashes = append(hashes, m[1])
	}
	if hashes[0] != hashes[1] || hashes[1] == hashes[2] || hashes[2] == hashes[3] {
		t.Errorf("user hashes %v: want one per name given", hashes)
	}
	if ok := lines(text, "auth ok"); len(ok) != 1 || !strings.Contains(ok[0], "user=crm") {
		t.Errorf("auth ok lines %q, want one naming user crm", ok)
	}
}

// A malformed header is logged as what is wrong with it, without the
// offending line, which may hold an address or other content.
func TestMalformedHeaderLogsNoContent(t *testing.T) {
	for _, c := range []struct{ name, msg, kind string }{
		{"line without a colon", "Subject: hi\r\nmail me at jan.dejong@example.org please\r\n\r\nbody\r\n", "colon"},
		{"bad field name", "Subject: hi\r\nReply to jan.dejong@example.org: yes\r\n\r\nbody\r\n", "field name"},
		{"leading continuation", " jan.dejong@example.org\r\nSubject: hi\r\n\r\nbody\r\n", "continuation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log *logBuffer
			p := startProxy(t, func(o *smtpproxy.Options) { log = capture(o) })
			_, err := send(p.dial(t), "crm@shop.example", []string{"piet@example.com"}, c.msg)
			wantCode(t, err, 554)
			text := log.String()
			if strings.Contains(text, "jan.dejong") {
				t.Errorf("the log holds the header line:\n%s", text)
			}
			got := lines(text, "malformed message")
			if len(got) != 1 || !strings.Contains(got[0], c.kind) {
				t.Errorf("malformed message lines %q, want one saying %q", got, c.kind)
			}
		})
	}
}

// An upstream's refusal quotes the recipient's address; the client hears
// it, the log does not keep it.
func TestUpstreamRepliesLoggedWithoutAddresses(t *testing.T) {
	var log *logBuffer
	p := startProxy(t, func(o *smtpproxy.Options) { log = capture(o) })
	p.up.set(func(r *recorder) {
		r.failRcpt["jan@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<jan@example.com>: no such user here"}
	})
	_, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com", "piet@example.com"}, plainMsg)
	if se := wantCode(t, err, 451); !strings.Contains(se.Message, "jan@example.com") {
		t.Errorf("the client should hear whom the upstream refused: %s", se.Message)
	}
	p.up.set(func(r *recorder) {
		r.failData = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "message to piet@example.com from crm@shop.example refused"}
	})
	_, err = send(p.dial(t), "crm@shop.example", []string{"piet@example.com"}, strings.Replace(plainMsg, "<m1@", "<logs2@", 1))
	wantCode(t, err, 554)
	text := log.String()
	for _, addr := range []string{"jan@example.com", "piet@example.com", "crm@shop.example"} {
		if strings.Contains(text, addr) {
			t.Errorf("log holds %s:\n%s", addr, text)
		}
	}
	if len(lines(text, "upstream refused message")) != 1 {
		t.Errorf("the refusal is not logged:\n%s", text)
	}
}
