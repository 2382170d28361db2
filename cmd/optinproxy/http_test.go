package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/config"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/upstream"
)

const httpTestToken = "http-test-token"

// closeBound is how long a test waits for the server to drop a
// connection before it calls the connection held. It bounds the wait, it
// does not time the server: the timeouts under test are far shorter.
const closeBound = 20 * time.Second

// httpUnderTest is the HTTP listener as serve builds it, handler and
// server, on the embedded store and the file upstream, with timeouts of
// the test's choosing.
type httpUnderTest struct {
	addr   string
	active chan struct{} // one value per request whose headers the server read
	closed chan struct{} // one value per connection the server closed
}

// startHTTP serves on a loopback listener; wrap, when not nil, wraps it.
func startHTTP(t *testing.T, to httpTimeouts, wrap func(net.Listener) net.Listener) *httpUnderTest {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Store.Path = dir
	cfg.Unsubscribe.SecretFile = filepath.Join(dir, "unsubscribe.key")
	if _, err := ensureSecret(cfg.Unsubscribe.SecretFile); err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Tokens = []config.Token{{Name: "admin", Token: httpTestToken, Scopes: []string{"read", "write"}}}
	store := teststore.File(t, filepath.Join(dir, "optinproxy.db"))
	up, err := upstream.New(upstream.Options{URL: "file://" + filepath.Join(dir, "outbox")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	parts, err := newHandler(cfg, prometheus.NewRegistry(), store, up, optin.NewDomainRates(nil), log, to.long)
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(parts.handler, to, log)
	h := &httpUnderTest{active: make(chan struct{}, 100), closed: make(chan struct{}, 100)}
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateActive:
			h.active <- struct{}{}
		case http.StateClosed:
			h.closed <- struct{}{}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		l = wrap(l)
	}
	h.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return h
}

// dial opens a raw connection that the test drives by hand.
func (h *httpUnderTest) dial(t *testing.T, d *net.Dialer) net.Conn {
	t.Helper()
	if d == nil {
		d = &net.Dialer{}
	}
	c, err := d.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readUntilClosed reads what the server sends until it closes the
// connection, and fails the test if it is still open after closeBound.
func readUntilClosed(t *testing.T, c net.Conn, what string) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(closeBound))
	got, err := io.ReadAll(c)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil // closed with unread input: closed all the same
	}
	if err != nil {
		t.Fatalf("%s: the connection was still held after %s (%v); got %q", what, closeBound, err, got)
	}
	return string(got)
}

// A client that announces a body and sends none is dropped after the
// read timeout, whether or not it has a token; an import's own, longer
// deadline ends too.
func TestHTTPReadTimeout(t *testing.T) {
	h := startHTTP(t, httpTimeouts{header: time.Minute, read: 300 * time.Millisecond, write: time.Minute,
		idle: time.Minute, long: 600 * time.Millisecond}, nil)
	for _, tc := range []struct {
		name, method, path, token, status string
	}{
		{"import without a token", "POST", "/api/v1/imports", "", "401"},
		{"import with a token", "POST", "/api/v1/imports", httpTestToken, "408"},
		{"consent with a token", "PUT", "/api/v1/subjects/a@example.com/consents/newsletter", httpTestToken, "408"},
		{"health check", "POST", "/healthz", "", "405"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial(t, nil)
			req := tc.method + " " + tc.path + " HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n"
			if tc.token != "" {
				req += "Authorization: Bearer " + tc.token + "\r\n"
			}
			if _, err := io.WriteString(c, req+"\r\n"); err != nil {
				t.Fatal(err)
			}
			got := readUntilClosed(t, c, "a body announced and never sent")
			if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+" ") {
				t.Errorf("answer %.200q, want %s", got, tc.status)
			}
		})
	}
}

// An import may take longer to arrive than the read timeout: once its
// token is checked it has the long deadline instead.
func TestHTTPImportOutlastsReadTimeout(t *testing.T) {
	h := startHTTP(t, httpTimeouts{header: time.Minute, read: 300 * time.Millisecond, write: time.Minute,
		idle: time.Minute, long: time.Minute}, nil)
	body := "email,purpose,status,basis,source\n" + "late@example.com,newsletter,granted,consent,import\n"
	half := len(body) / 2
	imp := h.dial(t, nil)
	fmt.Fprintf(imp, "POST /api/v1/imports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s",
		httpTestToken, len(body), body[:half])
	select {
	case <-h.active: // the server read the import's headers: its read timeout runs
	case <-time.After(closeBound):
		t.Fatal("the import's headers were not read")
	}
	// A second connection, started later, that sends no body: when the
	// server drops it, the import's read timeout has passed too.
	idle := h.dial(t, nil)
	io.WriteString(idle, "PUT /api/v1/subjects/a@example.com/consents/newsletter HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
	readUntilClosed(t, idle, "a body announced and never sent")

	if _, err := io.WriteString(imp, body[half:]); err != nil {
		t.Fatal(err)
	}
	imp.SetReadDeadline(time.Now().Add(closeBound))
	resp, err := http.ReadResponse(bufio.NewReader(imp), nil)
	if err != nil {
		t.Fatalf("the import was cut by the read timeout: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"applied": 1`) {
		t.Errorf("late import: %d %s", resp.StatusCode, raw)
	}
}

// A kept-alive connection that sends no next request is closed after the
// idle timeout.
func TestHTTPIdleTimeout(t *testing.T) {
	h := startHTTP(t, httpTimeouts{header: time.Minute, read: time.Minute, write: time.Minute,
		idle: 300 * time.Millisecond, long: time.Minute}, nil)
	c := h.dial(t, nil)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("health check: %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	if rest := readUntilClosed(t, c, "an idle kept-alive connection"); rest != "" || br.Buffered() > 0 {
		t.Errorf("unexpected bytes after the answer: %q", rest)
	}
}

// smallSendBuffers makes the server's socket buffers small, so that a
// client that does not read blocks the server's writes after a few
// kilobytes rather than after the megabytes Linux buffers by itself.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// A client that asks for a big answer and does not read it is cut off by
// the write timeout: the server closes the connection while the answer
// is still unsent, instead of waiting on it for ever.
func TestHTTPWriteTimeout(t *testing.T) {
	h := startHTTP(t, httpTimeouts{header: time.Minute, read: time.Minute, write: time.Second,
		idle: time.Minute, long: time.Minute}, func(l net.Listener) net.Listener { return smallSendBuffers{l} })
	var csv strings.Builder
	csv.WriteString("email,purpose,status,basis,source\n")
	for i := range 1000 {
		fmt.Fprintf(&csv, "user%d@example.com,newsletter,granted,consent,import\n", i)
	}
	req, _ := http.NewRequest("POST", "http://"+h.addr+"/api/v1/imports", strings.NewReader(csv.String()))
	req.Header.Set("Authorization", "Bearer "+httpTestToken)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("import: %d", resp.StatusCode)
	}
	// The import's connection closes after its answer; what counts below
	// is the next close, of the slow reader's connection.
	select {
	case <-h.closed:
	case <-time.After(closeBound):
		t.Fatalf("the import's connection was still open after %s", closeBound)
	}

	// A small receive window from the first byte: the client's buffer
	// fills at once.
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	c := h.dial(t, d)
	if _, err := io.WriteString(c, "GET /api/v1/events?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+httpTestToken+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.closed:
	case <-time.After(closeBound):
		t.Fatalf("a client that does not read its answer was still held after %s", closeBound)
	}
	// What was sent before the cut arrives, then the end: the answer is
	// incomplete.
	resp, err = http.ReadResponse(bufio.NewReader(strings.NewReader(readUntilClosed(t, c, "the cut connection"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading the cut answer: %v, want an unexpected end", err)
	}
}
