package smtpproxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"optinproxy/internal/testcert"
	"optinproxy/internal/teststore"
	"optinproxy/smtpproxy"
	"optinproxy/upstream"
)

// proxy is a running smtpproxy.Server in front of a recorder.
type proxy struct {
	addr    string
	tlsAddr string
	srv     *smtpproxy.Server
	up      *recorder
	reg     *prometheus.Registry
	sender  upstream.Sender
}

// startProxy starts a proxy that relays to a fresh recorder through the
// real pooled SMTP upstream. edit may change the options first.
func startProxy(t *testing.T, edit func(o *smtpproxy.Options)) *proxy {
	t.Helper()
	return startProxyTo(t, newRecorder(t), edit)
}

// startProxyTo starts a proxy that relays to up, which other proxies may
// share. Unless edit says otherwise, it decides from a fresh embedded
// store, and its messages are transactional, which every recipient may
// get: the tests of the relay itself see every copy go out.
func startProxyTo(t *testing.T, up *recorder, edit func(o *smtpproxy.Options)) *proxy {
	t.Helper()
	sender, err := upstream.New(upstream.Options{URL: "smtp://" + up.addr, Timeout: 2 * time.Second, DotTimeout: 2 * time.Second, PoolSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	reg := prometheus.NewRegistry()
	opts := smtpproxy.Options{
		Hostname:        "relay.test",
		Upstream:        sender,
		Store:           teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db")),
		Purposes:        testPurposes,
		DefaultPurpose:  "transactional",
		UpstreamTimeout: 5 * time.Second,
		Metrics:         reg,
		Logger:          slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := smtpproxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{srv: srv, up: up, reg: reg, sender: sender}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	go srv.Serve(ln)
	if opts.TLSConfig != nil {
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.tlsAddr = tln.Addr().String()
		go srv.ServeTLS(tln)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return p
}

// dial opens a go-smtp client session to the proxy.
func (p *proxy) dial(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send runs one transaction and returns the DATA reply (or the first
// error on the way).
func send(c *smtp.Client, from string, to []string, msg string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// wantCode fails unless err is an SMTP reply with the code.
func wantCode(t *testing.T, err error, code int) *smtp.SMTPError {
	t.Helper()
	se, ok := err.(*smtp.SMTPError)
	if !ok {
		t.Fatalf("want SMTP %d, got %v", code, err)
	}
	if se.Code != code {
		t.Fatalf("want SMTP %d, got %d %v %s", code, se.Code, se.EnhancedCode, se.Message)
	}
	return se
}

// fresh is plainMsg with a Message-ID of its own: the proxy does not
// deliver one message twice to a recipient, so tests that send
// "another" message must make it another.
func fresh() string {
	return strings.Replace(plainMsg, "<m1@shop.example>", fmt.Sprintf("<m%d@shop.example>", sent.Add(1)), 1)
}

var sent atomic.Int64

const plainMsg = "From: CRM <crm@shop.example>\r\nTo: <jan@example.com>\r\nSubject: Hello\r\nMessage-ID: <m1@shop.example>\r\n\r\nHi Jan,\r\nthis is the body.\r\n"

func hash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// testCert makes a self-signed certificate for 127.0.0.1, localhost and
// relay.test, and a pool that trusts it.
func testCert(t *testing.T) (*tls.Config, *x509.CertPool) {
	c := testcert.New(t, "relay.test")
	return c.Server, c.Pool
}

// metric reads one counter or gauge value from the registry.
func (p *proxy) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
