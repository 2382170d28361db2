package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"

	"optinproxy/internal/testtools"
)

// TestSMTPFloodLeavesHTTP: thousands of idle connections to the SMTP port
// that never say a word. The server, on a host whose open-file limit is
// 1024, holds only smtp.max_connections of them, answers the rest 421
// 4.7.0, and /healthz keeps answering while the flood is held.
func TestSMTPFloodLeavesHTTP(t *testing.T) {
	testtools.RaiseFileLimit(t, 4000)
	s := startServe(t, t.TempDir(), "OPTINPROXY_SMTP_MAX_CONNECTIONS=200", "OPTINPROXY_SMTP_MAX_CONNECTIONS_PER_IP=100")
	// The limit of many hosts, lowered in the running server rather than
	// in this test, which needs more for its own end of the flood.
	if err := unix.Prlimit(s.cmd.Process.Pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 1024, Max: 1024}, nil); err != nil {
		t.Fatalf("lowering the server's open-file limit: %v", err)
	}

	held, refused := flood(t, s.smtpAddr, 3000)
	if len(held) != 200 || refused != 2800 {
		t.Errorf("3000 idle connections: %d held, %d refused with 421 4.7.0; want 200 and 2800", len(held), refused)
	}

	hc := &http.Client{Timeout: time.Second}
	var healthy bool
	for i := 0; i < 3 && !healthy; i++ {
		resp, err := hc.Get("http://" + s.httpAddr + "/healthz")
		if err != nil {
			t.Logf("/healthz attempt %d: %v", i+1, err)
			continue
		}
		resp.Body.Close()
		healthy = resp.StatusCode == http.StatusOK
	}
	if !healthy {
		t.Error("/healthz did not answer 200 while the SMTP flood was held")
	}

	c, err := smtp.Dial(s.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	se, ok := c.Hello("client.test").(*smtp.SMTPError)
	if !ok || se.Code != 421 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 0}) {
		t.Errorf("SMTP client during the flood: %v, want 421 4.7.0", se)
	}
	if got := metric(t, s, `optinproxy_smtp_connections_refused_total{reason="global"}`); got != 2801 {
		t.Errorf("refused connections counted: %v, want 2801", got)
	}
}

// flood opens n connections to addr from ten loopback addresses and reads
// each one's opening line. It returns the connections greeted with 220,
// still open, and the number refused with 421 4.7.0. One deadline bounds
// all the reads, so a server that answers none does not hold the test
// for long.
func flood(t *testing.T, addr string, n int) (held []net.Conn, refused int) {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%10))}
		c, err := (&net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}).Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	deadline := time.Now().Add(20 * time.Second)
	unexpected := 0
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		line, err := bufio.NewReader(c).ReadString('\n')
		switch {
		case strings.HasPrefix(line, "220 "):
			c.SetReadDeadline(time.Time{})
			held = append(held, c)
			continue
		case strings.HasPrefix(line, "421 4.7.0 "):
			refused++
		default:
			if unexpected++; unexpected <= 3 {
				t.Logf("opening %q, %v", line, err)
			}
		}
		c.Close()
	}
	return held, refused
}
