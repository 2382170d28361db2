package smtpproxy_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"optinproxy/smtpproxy"
	"optinproxy/upstream"
)

// fakeMailer listens and hands each connection to serve: an upstream
// that misbehaves before any transaction starts.
func fakeMailer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

func proxyTo(t *testing.T, addr string, timeout time.Duration) *proxy {
	t.Helper()
	s, err := upstream.New(upstream.Options{URL: "smtp://" + addr, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return startProxy(t, func(o *smtpproxy.Options) { o.Upstream = s; o.UpstreamTimeout = timeout })
}

// An upstream whose greeting refuses the proxy (554) is the proxy's
// problem, not a verdict on the message: the client gets 451 4.4.1 and
// retries, instead of bouncing the message on a 554.
func TestUpstreamRefusingGreetingIs451(t *testing.T) {
	addr := fakeMailer(t, func(c net.Conn) {
		io.WriteString(c, "554 5.7.1 not from your address\r\n")
		c.Close()
	})
	p := proxyTo(t, addr, 5*time.Second)
	_, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, plainMsg)
	se := wantCode(t, err, 451)
	if se.EnhancedCode != [3]int{4, 4, 1} {
		t.Errorf("enhanced code %v, want 4.4.1", se.EnhancedCode)
	}
}

// An upstream that accepts the connection and never greets: the client
// gets 451 once UpstreamTimeout (1s) has passed, not minutes later.
func TestUpstreamSilentGreetingBoundedByUpstreamTimeout(t *testing.T) {
	addr := fakeMailer(t, func(net.Conn) {}) // never says anything
	p := proxyTo(t, addr, time.Second)
	start := time.Now()
	_, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, plainMsg)
	wantCode(t, err, 451)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("DATA answered after %v, want about the 1s UpstreamTimeout", d)
	}
}
