package smtpproxy_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"optinproxy/smtpproxy"
)

// syncBuffer is a log sink safe for the proxy's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// capturingProxy starts a proxy whose log goes to the returned buffer.
func capturingProxy(t *testing.T, edit func(o *smtpproxy.Options)) (*proxy, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	p := startProxy(t, func(o *smtpproxy.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if edit != nil {
			edit(o)
		}
	})
	return p, &logs
}

// An upstream's refusal quotes the recipient's address; the client hears
// it, the log does not keep it.
func TestUpstreamRepliesLoggedWithoutAddresses(t *testing.T) {
	p, logs := capturingProxy(t, nil)
	p.up.set(func(r *recorder) {
		r.failRcpt["jan@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<jan@example.com>: no such user here"}
		r.failData = nil
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
	out := logs.String()
	for _, addr := range []string{"jan@example.com", "piet@example.com", "crm@shop.example"} {
		if strings.Contains(out, addr) {
			t.Errorf("log holds %s:\n%s", addr, out)
		}
	}
	if !strings.Contains(out, "upstream refused message") {
		t.Errorf("the refusal is not logged:\n%s", out)
	}
}
